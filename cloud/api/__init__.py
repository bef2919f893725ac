"""The admin HTTP API under /api/v1: one router module per capability, named like it.

`fleet` (warehouses, stations, enrollment), `agents`, `releases`, `labels` (templates),
`rulesets`, `orders` (ingest, state, privacy, timeline; `order_batch` reads the ingest body),
`waves`, `exceptions`, `records` (audit, export), `webhooks`, `access` (/me, sign-in), `tokens`,
`users`, `alerts`; `errors` is the error contract and the middlewares. `cloud.app` assembles them.

May import: the capabilities below it (sync excepted: the API never reaches the Watch stream),
`cloud.metrics`, `cloud.storage` and `dockside`. Never `cloud.console`, `cloud.app` or
`cloud.server`.
"""
