"""Test-only encoder: a Kubernetes JSON object -> the protobuf body client-go sends.

It mirrors the Go marshaller where that matters to the decoder: with
`go_zeros=True` every scalar field that is not a Go pointer is written even when
zero (gogo's generated Marshal does that for value fields), so the decoder's
omitempty rules are exercised on the bytes a real client produces.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from kubeling.protobuf import decode as pb
from kubeling.protobuf.gen import apimachinery_pkg_runtime_pb2 as runtime_pb2


def encode_body(obj: dict[str, Any], go_zeros: bool = False) -> bytes:
    cls = pb.message_class(obj["apiVersion"], obj["kind"])
    msg = cls()
    fill(msg, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}, go_zeros)
    envelope = runtime_pb2.Unknown()
    envelope.typeMeta.apiVersion = obj["apiVersion"]
    envelope.typeMeta.kind = obj["kind"]
    envelope.raw = msg.SerializeToString()
    return pb.MAGIC + envelope.SerializeToString()


def fill(msg: Any, obj: dict[str, Any], go_zeros: bool) -> None:
    desc = msg.DESCRIPTOR
    inline = [f for f in desc.fields if f"{desc.full_name}.{f.name}" in pb.INLINE]
    renamed = {json_name: full.rsplit(".", 1)[1] for full, json_name in pb.RENAMED.items()
               if full.rsplit(".", 1)[0] == desc.full_name}
    for key, value in obj.items():
        key = renamed.get(key, key)
        field = desc.fields_by_name.get(key)
        if field is None:
            owner = next((f for f in inline if key in f.message_type.fields_by_name), None)
            if owner is None:
                raise KeyError(f"{desc.full_name} has no field {key!r}")
            fill(getattr(msg, owner.name), {key: value}, go_zeros)
            continue
        if pb._is_map(field):
            vfield = field.message_type.fields_by_name["value"]
            target = getattr(msg, key)
            for k, v in value.items():
                if vfield.type == FieldDescriptor.TYPE_MESSAGE:
                    set_message(target[k], v, go_zeros)
                else:
                    target[k] = scalar(vfield, v)
        elif field.is_repeated:
            target = getattr(msg, key)
            for v in value:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    set_message(target.add(), v, go_zeros)
                else:
                    target.append(scalar(field, v))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            set_message(getattr(msg, key), value, go_zeros)
        elif value is not None:
            setattr(msg, key, scalar(field, value))
    if go_zeros:
        for field in desc.fields:
            if field.is_repeated or field.type == FieldDescriptor.TYPE_MESSAGE or msg.HasField(field.name):
                continue
            if f"{desc.name}.{field.name}" not in pb.KEEP_ZERO:
                setattr(msg, field.name, field.default_value)


def set_message(msg: Any, value: Any, go_zeros: bool) -> None:
    name = msg.DESCRIPTOR.full_name
    msg.SetInParent()
    if name in (pb.TIME, pb.MICRO_TIME):
        if value is not None:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            msg.seconds = int(moment.timestamp())
            msg.nanos = moment.microsecond * 1000
    elif name in (pb.QUANTITY, pb.QUANTITY_VALUE):
        setattr(msg, "string", str(value))
    elif name == pb.INT_OR_STRING:
        if isinstance(value, str):
            msg.type, msg.strVal = 1, value
        else:
            msg.type, msg.intVal = 0, value
    elif name == pb.RAW_EXTENSION:
        msg.raw = json.dumps(value).encode()
    elif name == pb.FIELDS_V1:
        setattr(msg, "Raw", json.dumps(value).encode())
    elif len(msg.DESCRIPTOR.fields) == 1 and msg.DESCRIPTOR.fields[0].name == "items" \
            and isinstance(value, list):
        msg.items.extend(value)
    else:
        fill(msg, value, go_zeros)


def scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64decode(value)
    return value
