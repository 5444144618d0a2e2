"""The gateway: aiohttp app, routes, websocket, pages, middlewares, command line and wiring."""
