"""Shipping vocabulary both sides share: parcels, carrier label documents, tracking-number formats
and check digits, SSCC carton numbers. Imports nothing from `cloud` or `edge_agent`."""
