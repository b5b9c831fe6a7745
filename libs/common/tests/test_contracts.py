"""Contract helpers: a streamed answer collapsed into one chunk is the same answer."""

from schleuse_common.contracts.providers import GenerateChunk, Routing, Usage, collapse, merge_tool_calls


def test_tool_call_fragments_join_into_whole_calls() -> None:
    fragments = [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "wetter", "arguments": ""}},
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "zeit", "arguments": "{}"}},
        {"index": 0, "function": {"arguments": '{"ort": '}},
        {"index": 0, "function": {"arguments": '"Kiel"}'}},
    ]
    assert merge_tool_calls(fragments) == [
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "wetter", "arguments": '{"ort": "Kiel"}'},
        },
        {"index": 1, "id": "call_2", "type": "function", "function": {"name": "zeit", "arguments": "{}"}},
    ]


def test_collapse_keeps_text_order_and_the_final_chunks_facts() -> None:
    routing = Routing(requested="default", provider="demo", model="m")
    chunks = [
        GenerateChunk(delta="Guten "),
        GenerateChunk(delta="Tag, "),
        GenerateChunk(delta="Frau [PERSON_1].", finish_reason="stop", usage=Usage(total_tokens=9), routing=routing),
    ]
    one = collapse(chunks)
    assert one.delta == "Guten Tag, Frau [PERSON_1]."
    assert (one.finish_reason, one.usage, one.routing, one.tool_calls) == ("stop", Usage(total_tokens=9), routing, None)
