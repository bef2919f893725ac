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
    labels_bought   the background round over labels bought from api carriers: buy, void, relabel
    carrier_calls   calling a carrier's label API: the adapter an account names, attempts, bounds
    label_wants     which parcels of an order want a label bought, from which carrier and service
    label_buying    buying those labels, and recording each purchase or failure
    carrier_voids   voiding bought labels at the carrier's API (cancelled orders, voided parcels)
    relabels        buying a parcel's label again for a packed weight out of tolerance
    voids           voiding a parcel's label from the cloud, and its tracking number

May import cloud.orders (exceptions, states), cloud.webhooks, cloud.storage and dockside; is
imported by cloud.fleet (an enrolled agent gets its leases), cloud.sync and cloud.api.
"""
