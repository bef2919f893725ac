"""Shipping: carrier accounts, their tracking-number ranges, the blocks leased to agents, and the
manifests that close a day's parcels for a carrier's driver.

Owns the tables carriers, number_ranges, number_leases, tracking_numbers and manifests (and
moves parcels rows into manifests and to shipped; cloud.orders writes them when they are labelled).

    carriers        carrier accounts: how each gets its tracking numbers (oms, range, sscc, api)
    ranges          carrier-issued number ranges, checked against the carrier's number format
    leases          blocks of numbers leased to agents, topped up as they are used; used and
                    voided numbers as agents report them
    manifests       closing labelled parcels into a manifest; the handover that ships them
    manifest_pdf    the printable manifest for the driver
    carrier_api     the adapter interface for carriers that sell labels over an API
    shipstation     that adapter for the ShipStation API
    labels_bought   buying api carriers' labels for open orders, voiding them (cancel, void),
                    buying again for a packed weight out of tolerance: a background round
    voids           voiding a parcel's label from the cloud, and its tracking number

May import cloud.orders (exceptions, states), cloud.webhooks, cloud.storage and dockside; is
imported by cloud.fleet (an enrolled agent gets its leases), cloud.sync and cloud.api.
"""
