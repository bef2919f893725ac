"""Access: who may call the cloud, as what, and what was unusual about it.

Owns API tokens and principals, the secrets the cloud hands out, roles and warehouse scope,
console users and their sign-in limits, access alerts (which open exceptions in the exception
center), and `callers`: the FastAPI dependencies that turn a request into a principal with its
permissions, shared by the API and the console. May import `orders` (the exception center),
`webhooks`, `storage` and `dockside`.
"""
