"""Hostile capability declarations in uploaded modules get the usual clear refusal."""

import pytest

from flows.sandbox import SandboxError, module_capabilities


def test_a_deeply_nested_capability_declaration_is_refused_in_words(
    guests: dict[str, bytes],
) -> None:
    name = b"flowbuilder.capabilities"
    body = bytes([len(name)]) + name + b"[" * 50_000
    size = len(body)
    # The section size as a three-byte LEB128 number.
    leb = bytes([(size & 0x7F) | 0x80, ((size >> 7) & 0x7F) | 0x80, size >> 14])
    data = guests["hostile"] + b"\x00" + leb + body
    with pytest.raises(SandboxError) as caught:
        module_capabilities(data)
    assert str(caught.value) == (
        "the flowbuilder.capabilities section must hold a JSON list of capability names, "
        'such as ["kv.get", "llm.chat"]'
    )
