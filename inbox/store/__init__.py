"""Storage: every ORM query and every raw SQL statement of the domain, one module per aggregate, each unit a
named function (docs/architecture.md).

- `sql`: the prepared-SQL machinery (units of `Stmt`s, driven on SQLite in one hop or statement by
  statement through Tortoise); `groupcommit`: concurrent write units sharing transactions;
  `_compat`: the only place that touches a library's private names.
- aggregates, one module each: people (`people`, `access`: grants and what ends access), practices
  (`practices`, `installation`, `keys`: the data keys' sealed columns), sign-in (`tokens`, `apikeys`,
  `links`, `oidc`, `portal`), conversations (`conversations`, `visibility`, `messages` with the
  send path's prepared SQL, `records`, `purge`), delivery (`outbox`, `recipients`, `devices`, `webhooks`),
  and `audit`, `exports`, `retention`.

The domain (`inbox.*`) calls these; the gateway never does (it calls the domain). Nothing here imports a
domain module: what a unit needs of the domain's rules (a row shape, the caller's judgement) is passed in.
"""
