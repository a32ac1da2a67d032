#!/usr/bin/env python3
"""The README tour: join the lobby, say hello, get refused. Needs `pip install websockets`
and TOKEN in the environment (`cargo run --release -- token --sub alice`)."""
import asyncio, json, os, websockets

async def main():
    url = "ws://127.0.0.1:8080/ws"
    headers = {"Authorization": f"Bearer {os.environ['TOKEN']}"}
    async with websockets.connect(url, additional_headers=headers, subprotocols=["palisade.v1"]) as ws:
        print(await ws.recv())                                   # welcome
        await ws.send(json.dumps({"type": "join", "id": "1", "room": "lobby"}))
        print(await ws.recv())                                   # ack
        await ws.send(json.dumps({"type": "send", "id": "2", "room": "lobby",
                                  "event": "chat.message", "data": {"content": "hello"}}))
        print(await ws.recv())                                   # ack with seq
        print(await ws.recv())                                   # the event itself
        await ws.send(json.dumps({"type": "send", "id": "3", "room": "lobby",
                                  "event": "admin.wipe", "data": {}}))
        print(await ws.recv())                                   # error: unknown_event

asyncio.run(main())
