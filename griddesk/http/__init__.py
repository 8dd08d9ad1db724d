"""GridDesk over HTTP: health, metrics, Telegram's webhook, Open311 GeoReport v2, the
12345 hotline intake. One Starlette app, served by uvicorn beside the PTB Application in
the same process and event loop (`griddesk run --http HOST:PORT`)."""
