"""Complete lines, resume offsets, truncation and replacement (pure)."""

from datetime import date

from schleuse_ingest.domain.tailing import MAX_LINE_BYTES, Resume, advance, file_day, resume_at, split_lines


def test_partial_last_line_is_left_for_later() -> None:
    lines, offset = split_lines(b'{"a":1}\n{"b":2}\n{"c":', 100)
    assert [line.data for line in lines] == [b'{"a":1}', b'{"b":2}']
    assert offset == 116
    assert (lines[0].start, lines[0].end, lines[1].end) == (100, 108, 116)


def test_final_read_takes_the_last_line_without_newline() -> None:
    lines, offset = split_lines(b'{"a":1}\n{"c":3}', 0, final=True)
    assert [line.data for line in lines] == [b'{"a":1}', b'{"c":3}']
    assert offset == 15


def test_blank_lines_and_crlf() -> None:
    lines, offset = split_lines(b'\n{"a":1}\r\n  \n', 0)
    assert [line.data for line in lines] == [b'{"a":1}']
    assert offset == 13


def test_oversized_fragment_is_emitted_instead_of_blocking() -> None:
    lines, offset = split_lines(b"x" * (MAX_LINE_BYTES + 1), 0)
    assert len(lines) == 1 and offset == MAX_LINE_BYTES + 1


def test_resume_rules() -> None:
    head = b'{"first":"line"}\n{"second":1}\n'
    cursor = advance("calls-2024-05-02.jsonl", 7, head, len(head))
    assert resume_at(None, inode=7, size=10, head=head) == (0, Resume.NEW)
    assert resume_at(cursor, inode=7, size=len(head) + 50, head=head) == (len(head), Resume.CONTINUE)
    assert resume_at(cursor, inode=7, size=5, head=head[:5]) == (0, Resume.TRUNCATED)
    assert resume_at(cursor, inode=8, size=len(head), head=head) == (0, Resume.REPLACED)
    other = b'{"other":"file!"}\n{"second":1}\n'
    assert resume_at(cursor, inode=7, size=len(other), head=other) == (0, Resume.REPLACED)


def test_file_day() -> None:
    assert file_day("calls-2024-05-02.jsonl") == date(2024, 5, 2)
    assert file_day("calls-2024-02-30.jsonl") is None
    assert file_day("other.jsonl") is None
