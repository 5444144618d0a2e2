"""The API's request bodies and answers as pydantic models (gateway/typed.py), a module per route group.
Each route names its models in its `@operation` (gateway/routing.py); the OpenAPI document is written from
them (gateway/openapi.py)."""
