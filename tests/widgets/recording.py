"""A comm that records what widgets would send to the front end.

Widgets normally send messages to the browser through a kernel's comm. Here that comm is
replaced by one that keeps every message, serialized as the kernel would (strict JSON plus
binary buffers), so tests can check what a widget sends and how large each message is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from comm.base_comm import BaseComm


@dataclass
class Message:
    comm_id: str
    kind: str
    data: dict[str, Any]
    buffers: list[bytes]

    @property
    def size(self) -> int:
        """Bytes on the wire: the JSON text (NaN refused, as browsers refuse it) plus buffers."""
        return len(json.dumps(self.data, allow_nan=False).encode("utf-8")) + sum(len(b) for b in self.buffers)

    @property
    def state(self) -> dict[str, Any]:
        return self.data.get("state", {})


class Recorder:
    """Every message of every widget created while it is installed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def create_comm(self, *args: Any, **kwargs: Any) -> BaseComm:
        recorder = self

        class RecordingComm(BaseComm):
            def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any) -> None:
                blobs = [bytes(memoryview(b)) for b in buffers or []]
                recorder.messages.append(Message(self.comm_id, msg_type, dict(data or {}), blobs))

        return RecordingComm(*args, **kwargs)

    def of(self, widget: Any) -> list[Message]:
        """Messages sent by ``widget`` (its comm id is its model id)."""
        return [m for m in self.messages if m.comm_id == widget.model_id]

    def largest(self) -> Message:
        return max(self.messages, key=lambda m: m.size)

    def updates(self, widget: Any, trait: str) -> list[Any]:
        """Values of ``trait`` that ``widget`` sent, in order (opening state included)."""
        values = []
        for message in self.of(widget):
            state = message.state
            if trait in state:
                values.append(state[trait])
        return values
