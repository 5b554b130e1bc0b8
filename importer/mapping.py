"""YAML mapping -> compiled mapping; one row -> one activity payload or a RowError.

A mapping is checked as a whole twice before anything is sent: when it is loaded (structure,
field names, keys, formats, time zones) and when it is bound to a file's header (every column it
names must exist). After that, turning a row into a payload can only fail for that row.

This module parses and validates the YAML (or dict), binds the mapping to a header and builds
payloads; each field's value is produced by the evaluator ``fields.compile_spec`` builds at
bind time.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
from collections.abc import Callable, Sequence
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from importer.dates import load_timezone
from importer.errors import MappingError, RowError, RowSkipped
from importer.fields import REQUIRED_FIELDS, Placeholder, ValueSpec, compile_spec
from importer.table import Cell, Row, UncalculatedFormula, cell_text

#: Eloqua's activity properties the mapping may set, in payload order.
ACTIVITY_FIELDS = (
    "name",
    "assetName",
    "assetType",
    "activityType",
    "activityDate",
    "contactId",
    "campaignId",
    "fieldValues",
)
SOURCE_KEYS = ("sheet", "header_row", "encoding", "delimiter")
SPEC_SOURCES = ("column", "template", "value")
SPEC_OPTIONS = ("map", "default", "required")
DATE_OPTIONS = ("format", "timezone")
#: Fields whose value may be looked up in Eloqua by name, and the lookup each allows.
LOOKUPS = {"contactId": "contact", "campaignId": "campaign"}
CONTACT_LOOKUP_OPTIONS = ("lookup", "create_missing", "on_multiple", "firstName", "lastName")
ON_MULTIPLE = ("reject", "lowest_id")
TOP_LEVEL_KEYS = ("version", "source", "activity", "blank_values", "skip_if")
SKIP_TESTS = ("equals", "in", "not_in", "blank")
#: How ``eloqua-import init`` marks a value it could not fill in; such a mapping never runs.
PLACEHOLDER_PREFIX = "<FILL IN"
_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class SourceHints:
    """Loader hints from the mapping's optional ``source:`` section."""

    sheet: str | int | None = None
    header_row: int = 1
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class SkipRule:
    """A ``skip_if`` rule: rows whose ``column`` equals one of ``values`` (case-blind, trimmed),
    or equals none of them when ``negate`` (``not_in``), or is blank when ``values`` is None,
    are left out on purpose."""

    column: str
    values: tuple[str, ...] | None  # casefolded; None: the rule is "blank: true"
    shown: tuple[str, ...] = ()  # the values as the mapping wrote them, for messages
    index: int = -1  # filled in by Mapping.bind()
    negate: bool = False  # not_in: skip the rows whose cell is none of ``values``

    def reason(self, cells: Sequence[Cell], read: Sequence[Cell] | None = None) -> str | None:
        """Why the row is skipped (for the results' error column), or None to keep it.

        ``cells`` have ``blank_values`` applied, ``read`` are the cells as read: ``blank``
        tests the former, ``equals``/``in``/``not_in`` the latter, so a rule naming a placeholder
        value ("--") still matches it.
        """
        cell = cells[self.index] if self.values is None or read is None else read[self.index]
        text = "" if isinstance(cell, UncalculatedFormula) else cell_text(cell).strip()
        if self.values is None:
            return f"skip_if: {self.column} is blank" if not text else None
        if (text.casefold() in self.values) == self.negate:
            return None
        if not self.negate:
            return f"skip_if: {self.column} is {_quoted(text)}"
        wanted = " or ".join(_quoted(value) for value in self.shown)
        return f"skip_if: {self.column} is {_quoted(text) if text else 'blank'}, not {wanted}"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


@dataclass(frozen=True)
class FieldValueSpec:
    id: str
    spec: ValueSpec


@dataclass
class Mapping:
    """A loaded mapping file. Call :meth:`bind` with a file's header before using it."""

    path: Path
    source: SourceHints
    fields: dict[str, ValueSpec]
    field_values: list[FieldValueSpec]
    #: Cell texts read as blank everywhere (casefolded, trimmed): "--", "N/A"...
    blank_values: frozenset[str] = frozenset()
    skip_rules: list[SkipRule] = field(default_factory=list)
    _bound: bool = False
    #: (field, evaluator) in payload order, and (field id, evaluator): made by bind().
    _evaluators: list[tuple[str, Callable[[list[Cell]], Any]]] = field(
        default_factory=list, repr=False
    )
    _field_value_evaluators: list[tuple[str, Callable[[list[Cell]], Any]]] = field(
        default_factory=list, repr=False
    )

    def specs(self) -> list[ValueSpec]:
        top = [*self.fields.values(), *(fv.spec for fv in self.field_values)]
        return [*top, *(named for spec in top for named in spec.names.values())]

    @property
    def has_lookups(self) -> bool:
        return any(spec.lookup for spec in self.fields.values())

    def column_names(self) -> list[str]:
        """Every column the mapping reads, in mapping order, each once."""
        names = [name for spec in self.specs() for name in spec.column_names()]
        return list(dict.fromkeys([*names, *(rule.column for rule in self.skip_rules)]))

    def bind(
        self, header: Sequence[str], *, file: str = "the input file", records: bool = False
    ) -> None:
        """Resolve every column the mapping names against ``header``.

        ``records``: the header is the keys of Python records or a DataFrame's columns, not a
        file's header row (the messages say so).

        Matching is exact after trimming, else case-insensitive. Raises ColumnsMissing (a
        MappingError) listing every missing column with the closest existing one.
        """
        exact = {name.strip(): index for index, name in enumerate(header)}
        missing: list[str] = []
        folded: dict[str, int] = {}
        for name, position in exact.items():
            folded.setdefault(name.casefold(), position)
        problems: list[str] = []
        where = "the records" if records else "the file"
        for spec in self.specs():
            for column in spec.column_names():
                key = column.strip()
                index = exact.get(key, folded.get(key.casefold()))
                if index is None:
                    problems.append(_missing_column_message(spec.field, column, header, where))
                    missing.append(column)
                else:
                    spec.columns[column] = index
        for position, rule in enumerate(self.skip_rules):
            index = exact.get(rule.column.strip(), folded.get(rule.column.strip().casefold()))
            if index is None:
                problems.append(_missing_column_message("skip_if", rule.column, header, where))
                missing.append(rule.column)
            else:
                self.skip_rules[position] = dataclasses.replace(rule, index=index)
        if problems:
            raise ColumnsMissing(
                missing,
                f"{self.path}: the mapping does not fit {file}:\n  "
                + "\n  ".join(problems)
                + (
                    "\nFix the column names in the mapping, or give the records those columns."
                    if records
                    else "\nFix the column names in the mapping (or use --header-row if the"
                    " column names are not on row 1)."
                ),
            )
        for spec in self.specs():
            try:
                spec.evaluate = compile_spec(spec)
            except RowError as exc:
                raise MappingError(f"{self.path}: {spec.field}: {exc}") from None
        self._evaluators = [(name, _compiled(spec.evaluate)) for name, spec in self.fields.items()]
        self._field_value_evaluators = [
            (field_value.id, _compiled(field_value.spec.evaluate))
            for field_value in self.field_values
        ]
        self._bound = True

    def payload(self, row: Row) -> dict[str, Any]:
        """Turn one row into an Eloqua activity payload; raise RowError if it cannot."""
        if not self._bound:
            raise RuntimeError("Mapping.bind() must be called before payload()")
        if row.error:
            raise RowError(row.error, code="unreadable-row")
        cells = row.cells
        if self.blank_values:
            blanks = self.blank_values
            cells = [
                "" if cell.__class__ is str and cell.strip().casefold() in blanks else cell
                for cell in cells
            ]
        for rule in self.skip_rules:
            reason = rule.reason(cells, row.cells)
            if reason is not None:
                # The code holds the whole reason (rule and value), so the summary gives each
                # its own line: an `in:` rule's rows are not all shown under the first value.
                raise RowSkipped(
                    reason,
                    column=rule.column,
                    value=row.cells[rule.index],
                    code=f"skip-if: {reason.casefold()}",
                )
        # The evaluators in lists made by bind(): a comprehension, no attribute lookups per field.
        payload = {
            name: value
            for name, evaluate in self._evaluators
            if (value := evaluate(cells)) is not None
        }
        if "name" not in payload:
            payload = {"name": payload["assetName"], **payload}
        values = [
            {"type": "FieldValue", "id": field_id, "value": value}
            for field_id, evaluate in self._field_value_evaluators
            if (value := evaluate(cells)) is not None
        ]
        if values:
            payload["fieldValues"] = values
        return payload


def _compiled(evaluate: Callable[[list[Cell]], Any] | None) -> Callable[[list[Cell]], Any]:
    assert evaluate is not None, "compiled by bind()"
    return evaluate


class _MappingLoader(yaml.SafeLoader):
    """YAML as users mean it: yes/no/on/off are words (map keys!) and dates stay text.

    Only true/false are booleans, as in YAML 1.2.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # PyYAML composes recursively: a deep enough file would end in RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                mark = self.peek_event().start_mark
                raise _Unbounded(
                    f"line {mark.line + 1}: it is nested more than {MAX_NESTING} levels deep,"
                    " far more than a mapping needs; check its indentation and brackets"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expanded_size(node)
        return node


_MappingLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith((":bool", ":timestamp"))]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_MappingLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


#: Bounds on what a mapping file may hold: a real one is a page of YAML. Beyond them the file is
#: refused before anything is built from it (a deep nest, an alias bomb, a huge file).
MAX_MAPPING_BYTES = 1024 * 1024
MAX_NESTING = 50
#: Values in the document once every alias (*name) is expanded where it is used.
MAX_EXPANDED_VALUES = 100_000


class _Unbounded(Exception):
    """The mapping file exceeds one of the bounds above; ``str()`` says which."""


def _check_expanded_size(root: Any) -> None:
    """Count the values the document holds with aliases expanded, without expanding them.

    Aliases share one node, so a small file can stand for billions of values ("billion
    laughs"); anything that walks or prints such a value would take that long. Each node's
    size is computed once (iteratively, depth-first), and a node that contains itself is
    refused too.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the ancestors of the node being looked at
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[key] > MAX_EXPANDED_VALUES:
                raise _Unbounded(
                    f"line {node.start_mark.line + 1}: its aliases (*name) expand to more than"
                    f" {MAX_EXPANDED_VALUES:,} values; write the values out instead of nesting"
                    " aliases of aliases"
                )
        elif key in open_nodes:
            raise _Unbounded(
                f"line {node.start_mark.line + 1}: an alias (*name) refers to a value that"
                " contains it; remove the alias"
            )
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _check_dict_bounds(root: Any) -> None:
    """The YAML bounds for a mapping given as a dict (the library API): nesting, values once
    shared objects are counted where used, and no dict or list inside itself.

    Iterative, each container measured once: a deep, cyclic or widely shared structure is
    refused at once instead of ending in RecursionError or a walk over billions of values.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, levels)
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _object_children(node)
        if finished:
            open_nodes.discard(key)
            parts = [measured.get(id(child), (1, 0)) for child in children or ()]
            values = 1 + sum(size for size, _ in parts)
            levels = 1 + max((depth for _, depth in parts), default=0)
            if levels > MAX_NESTING:
                raise _Unbounded(
                    f"it is nested more than {MAX_NESTING} levels deep, far more than a mapping"
                    " needs"
                )
            if values > MAX_EXPANDED_VALUES:
                raise _Unbounded(
                    f"it holds more than {MAX_EXPANDED_VALUES:,} values once shared lists and"
                    " dicts are counted where they are used"
                )
            measured[key] = (values, levels)
        elif key in open_nodes:
            raise _Unbounded("a dict or list in it contains itself")
        elif key not in measured and children is not None:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)


def _object_children(node: Any) -> list[Any] | None:
    """A container's keys and values (None for a scalar)."""
    if isinstance(node, AnyMapping):
        return [part for pair in node.items() for part in pair]
    if isinstance(node, list | tuple):
        return list(node)
    return None


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_EXCERPT = reprlib.Repr()
_EXCERPT.maxlevel = 2
_EXCERPT.maxstring = _EXCERPT.maxother = 60
_EXCERPT.maxlist = _EXCERPT.maxdict = 4


def _excerpt(value: Any) -> str:
    """A short repr of a value from the mapping file, however large (or aliased) it is."""
    return _EXCERPT.repr(value)


def _short(value: Any) -> str:
    """A value from the mapping file as text, cut to an excerpt when long."""
    if not isinstance(value, str | int | float):
        return _excerpt(value)
    text = str(value)
    return text if len(text) <= _EXCERPT.maxstring else text[: _EXCERPT.maxstring - 3] + "..."


#: How messages name a mapping given as a dict (``importer.import_records(mapping={...})``).
MAPPING_DICT = Path("the mapping dict")


def load_mapping(source: str | Path | AnyMapping[str, Any]) -> Mapping:
    """Read and check a mapping file, or a dict of the same schema as the YAML.

    A dict goes through the same checks, with the same messages, as a file; its ``version``
    may be left out. Raises MappingError naming the problem and the fix.
    """
    if isinstance(source, AnyMapping):
        try:
            _check_dict_bounds(source)
        except _Unbounded as exc:
            raise MappingError(f"{MAPPING_DICT} is not a usable mapping: {exc}") from None
        return parse_mapping({"version": 1, **source}, MAPPING_DICT)
    path = Path(source)
    return parse_mapping(read_mapping_document(_read_mapping_text(path), str(path)), path)


def read_mapping_document(text: str, where: str) -> Any:
    """Parse mapping YAML (bounded, as a file is) into plain data, unchecked; the web page
    reads what a person types with it. Raises MappingError naming ``where``."""
    if len(text.encode("utf-8")) > MAX_MAPPING_BYTES:
        raise MappingError(f"{where} is larger than {MAX_MAPPING_BYTES // 1024} KB")
    try:
        return yaml.load(text, Loader=_MappingLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise MappingError(f"{where}: {_describe_yaml_error(exc)}") from None
    except _Unbounded as exc:
        raise MappingError(f"{where} is not a usable mapping file: {exc}") from None


def _read_mapping_text(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_MAPPING_BYTES + 1)
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} not found; check the --mapping path") from None
    except OSError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from None
    if len(data) > MAX_MAPPING_BYTES:
        raise MappingError(
            f"mapping file {path} is larger than {MAX_MAPPING_BYTES // 1024} KB, far more than a"
            " mapping needs; check that --mapping names the mapping (.yaml), not a data file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from None


def parse_mapping(document: Any, path: Path) -> Mapping:
    """Check an already-parsed YAML document; raise MappingError for the first problem."""
    where = str(path)
    if not isinstance(document, dict):
        raise MappingError(
            f"{where}: a mapping file must be a YAML mapping with 'version: 1' and an"
            " 'activity:' section"
        )
    _check_keys(document, TOP_LEVEL_KEYS, where, "the top level")
    version = document.get("version")
    if version != 1 or isinstance(version, bool):
        raise MappingError(
            f"{where}: 'version' must be 1 (found {_excerpt(document.get('version'))});"
            " add 'version: 1' as the first line"
        )
    source = _parse_source(document.get("source") or {}, where)
    activity = document.get("activity")
    if not isinstance(activity, dict):
        raise MappingError(f"{where}: the 'activity:' section is missing or is not a mapping")
    _refuse_placeholders(document, where)
    _check_keys(activity, ACTIVITY_FIELDS, where, "activity")
    missing = [name for name in REQUIRED_FIELDS if activity.get(name) is None]
    if missing:
        raise MappingError(
            f"{where}: activity is missing {', '.join(missing)}; Eloqua needs assetName,"
            " assetType, activityType, activityDate and contactId on every activity"
        )
    fields = {
        name: _parse_spec(name, activity[name], where)
        for name in ACTIVITY_FIELDS
        if name != "fieldValues" and activity.get(name) is not None
    }
    for name in REQUIRED_FIELDS:
        if not fields[name].required and fields[name].default is None:
            raise MappingError(
                f"{where}: activity.{name} cannot be 'required: false': Eloqua needs it on every"
                " activity (give a 'default:' instead)"
            )
    field_values = _parse_field_values(activity.get("fieldValues"), where)
    return Mapping(
        path=path,
        source=source,
        fields=fields,
        field_values=field_values,
        blank_values=_parse_blank_values(document.get("blank_values"), where),
        skip_rules=_parse_skip_rules(document.get("skip_if"), where),
    )


class ColumnsMissing(MappingError):
    """The mapping names columns the file's header lacks; ``columns`` lists them."""

    def __init__(self, columns: list[str], message: str) -> None:
        super().__init__(message)
        self.columns = columns


def _refuse_placeholders(node: Any, where: str, path: str = "") -> None:
    """A value ``eloqua-import init`` left for the user to fill in must never reach Eloqua."""
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_placeholders(value, where, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for position, value in enumerate(node, start=1):
            _refuse_placeholders(value, where, f"{path} item {position}")
    elif isinstance(node, str) and node.strip().upper().startswith(PLACEHOLDER_PREFIX):
        raise MappingError(
            f"{where}: {path} is still the placeholder {node!r} that 'eloqua-import init'"
            " wrote; replace it with a real value (the comment above it lists the choices)."
            " Nothing was sent."
        )


def _parse_blank_values(raw: Any, where: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    values = [raw] if _is_scalar(raw) else raw
    if not isinstance(values, list) or not all(_is_scalar(v) for v in values):
        raise MappingError(
            f'{where}: blank_values must be a list of texts, e.g. blank_values: ["--", "N/A"]'
        )
    return frozenset(_scalar_text(value).strip().casefold() for value in values)


def _parse_skip_rules(raw: Any, where: str) -> list[SkipRule]:
    if raw is None:
        return []
    example = '- {column: Attended, equals: "No"}'
    if not isinstance(raw, list):
        raise MappingError(f"{where}: skip_if must be a list of rules like  {example}")
    return [_parse_skip_rule(item, position, where) for position, item in enumerate(raw, 1)]


def _parse_skip_rule(item: Any, position: int, where: str) -> SkipRule:
    label = f"skip_if rule {position}"
    if not isinstance(item, dict) or not isinstance(item.get("column"), str | int):
        raise MappingError(
            f"{where}: {label} needs a column and one test, like"
            ' {column: Attended, equals: "No"}, {column: Status, in: [Refunded, Cancelled]},'
            ' {column: Status, not_in: ["Checked In"]} or {column: Join Time, blank: true}'
        )
    _check_keys(item, ("column", *SKIP_TESTS), where, label)
    tests = [key for key in SKIP_TESTS if key in item]
    if len(tests) != 1:
        raise MappingError(
            f"{where}: {label} needs exactly one of 'equals', 'in', 'not_in' or 'blank'"
            f" (found {', '.join(tests) or 'none'})"
        )
    column = str(item["column"])
    if tests[0] == "blank":
        if item["blank"] is not True:
            raise MappingError(f"{where}: {label}: write 'blank: true' (or remove the rule)")
        return SkipRule(column, None)
    values = [item["equals"]] if tests[0] == "equals" else item[tests[0]]
    if not isinstance(values, list) or not values or not all(_is_scalar(v) for v in values):
        raise MappingError(
            f"{where}: {label}: '{tests[0]}' needs "
            + (
                'one text, e.g. equals: "No"'
                if tests[0] == "equals"
                else f"a list, e.g. {tests[0]}: [Refunded, Cancelled]"
            )
        )
    texts = tuple(_scalar_text(v).strip() for v in values)
    return SkipRule(column, tuple(t.casefold() for t in texts), texts, negate=tests[0] == "not_in")


def _parse_source(source: Any, where: str) -> SourceHints:
    if not isinstance(source, dict):
        raise MappingError(f"{where}: 'source:' must be a mapping (sheet, header_row)")
    _check_keys(source, SOURCE_KEYS, where, "source")
    header_row = source.get("header_row", 1)
    if not isinstance(header_row, int) or isinstance(header_row, bool) or header_row < 1:
        raise MappingError(
            f"{where}: source.header_row must be a row number (1 or more),"
            f" not {_excerpt(header_row)}"
        )
    sheet = source.get("sheet")
    if sheet is not None and (not isinstance(sheet, str | int) or isinstance(sheet, bool)):
        raise MappingError(f"{where}: source.sheet must be a sheet name or number")
    for key in ("encoding", "delimiter"):
        if source.get(key) is not None and not isinstance(source[key], str):
            raise MappingError(
                f"{where}: source.{key} must be text, e.g. {key}: "
                + ('"cp1252"' if key == "encoding" else '";"')
            )
    return SourceHints(
        sheet=sheet,
        header_row=header_row,
        encoding=source.get("encoding"),
        delimiter=source.get("delimiter"),
    )


def _parse_field_values(raw: Any, where: str) -> list[FieldValueSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise MappingError(
            f"{where}: activity.fieldValues must be a list of items like"
            ' - {id: "12", column: Booth}'
        )
    result = []
    for position, item in enumerate(raw, start=1):
        label = f"fieldValues item {position}"
        if not isinstance(item, dict) or not _is_scalar(item.get("id")):
            raise MappingError(
                f"{where}: {label} needs an 'id' (the Eloqua field id) and a column, template or"
                ' value, e.g. - {id: "12", column: Booth}'
            )
        rest = {key: value for key, value in item.items() if key != "id"}
        spec = _parse_spec(f"{label} (id {_short(item['id'])})", rest, where, allow_date=False)
        result.append(FieldValueSpec(id=str(item["id"]), spec=spec))
    return result


def _parse_spec(name: str, raw: Any, where: str, *, allow_date: bool = True) -> ValueSpec:
    is_date = allow_date and name == "activityDate"
    if isinstance(raw, bool) or raw is None or raw == "":
        raise MappingError(
            f"{where}: {name} must be a text, a number or a column mapping like"
            " {column: Column Name}"
        )
    if isinstance(raw, str | int | float):
        return _constant_or_template(name, raw, where)
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: {name} must be a text, a number or a column mapping")
    lookup = LOOKUPS.get(name) if "lookup" in raw else None
    allowed = SPEC_SOURCES + SPEC_OPTIONS + (DATE_OPTIONS if is_date else ())
    if lookup == "contact":
        allowed += CONTACT_LOOKUP_OPTIONS
    elif lookup == "campaign" or (name in LOOKUPS and "lookup" in raw):
        allowed += ("lookup",)
    _check_keys(raw, allowed, where, name)
    sources = [key for key in SPEC_SOURCES if key in raw]
    if len(sources) != 1:
        raise MappingError(
            f"{where}: {name} needs exactly one of 'column', 'template' or 'value'"
            f" (found {', '.join(sources) or 'none'})"
        )
    kind = sources[0]
    for key in (kind, "default"):
        if key in raw and not _is_scalar(raw[key]):
            raise MappingError(
                f"{where}: {name}: '{key}' must be a single text or number,"
                f" not {_excerpt(raw[key])}"
                " (quote text that contains ':', '{' or '#')"
            )
    if kind == "template":
        spec = ValueSpec(name, "template", _parse_template(str(raw["template"]), name, where))
    elif kind == "column":
        if not isinstance(raw["column"], str | int) or str(raw["column"]).strip() == "":
            raise MappingError(f"{where}: {name}: 'column' must be a column name")
        spec = ValueSpec(name, "column", str(raw["column"]))
    else:
        spec = ValueSpec(name, "value", raw["value"])
    spec.value_map = _parse_value_map(raw.get("map"), name, where)
    spec.default = raw.get("default")
    required = _BOOLEAN_WORDS.get(str(raw.get("required", True)).casefold())
    if required is None:
        raise MappingError(f"{where}: {name}: 'required' must be true or false")
    spec.required = required
    if lookup is not None:
        _parse_lookup(spec, lookup, raw, where)
    if is_date:
        spec.formats = _parse_formats(raw.get("format"), where)
        if raw.get("timezone") is not None:
            try:
                spec.timezone = load_timezone(str(raw["timezone"]))
            except ValueError as exc:
                raise MappingError(f"{where}: activityDate.timezone: {exc}") from None
    return spec


def _parse_lookup(spec: ValueSpec, lookup: str, raw: dict[str, Any], where: str) -> None:
    if raw["lookup"] != lookup:
        raise MappingError(
            f"{where}: {spec.field}: 'lookup' must be '{lookup}', e.g. "
            + (
                "contactId: {lookup: contact, column: Email}"
                if lookup == "contact"
                else "campaignId: {lookup: campaign, column: Campaign}"
            )
        )
    spec.lookup = lookup
    create = _BOOLEAN_WORDS.get(str(raw.get("create_missing", False)).casefold())
    if create is None:
        raise MappingError(f"{where}: {spec.field}: 'create_missing' must be true or false")
    spec.create_missing = create
    spec.on_multiple = str(raw.get("on_multiple", "reject"))
    if spec.on_multiple not in ON_MULTIPLE:
        raise MappingError(
            f"{where}: {spec.field}: 'on_multiple' must be one of {', '.join(ON_MULTIPLE)}"
        )
    for key in ("firstName", "lastName"):
        if raw.get(key) is not None:
            named = _parse_spec(f"{spec.field}.{key}", raw[key], where, allow_date=False)
            named.required = False
            spec.names[key] = named


def _constant_or_template(name: str, raw: str | int | float, where: str) -> ValueSpec:
    if isinstance(raw, str) and ("{" in raw or "}" in raw):
        parts = _parse_template(raw, name, where)
        if any(isinstance(part, Placeholder) for part in parts):
            return ValueSpec(name, "template", parts)
        return ValueSpec(name, "value", "".join(p for p in parts if isinstance(p, str)))
    return ValueSpec(name, "value", raw)


def _parse_template(text: str, name: str, where: str) -> list[str | Placeholder]:
    parts: list[str | Placeholder] = []
    position = 0
    for match in _TEMPLATE_TOKEN.finditer(text):
        parts.append(text[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token in ("{", "}") or not match.group(1).strip():
            raise MappingError(
                f"{where}: {name}: template {_excerpt(text)} has an unmatched or empty brace; write"
                " {Column Name} for a column and {{ or }} for a literal brace"
            )
        else:
            parts.append(Placeholder(match.group(1)))
        position = match.end()
    parts.append(text[position:])
    return [part for part in parts if part != ""]


def _parse_value_map(raw: Any, name: str, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or not raw:
        raise MappingError(f"{where}: {name}: 'map' must be a mapping like {{visited: Visited}}")
    folded: dict[str, Any] = {}
    for key, value in raw.items():
        if not _is_scalar(key) or not _is_scalar(value):
            shown = f"{_short(key)}: {_excerpt(value)}"
            raise MappingError(
                f"{where}: {name}: 'map' entry {shown} needs a single text or number on both"
                " sides, like  visited: Visited Booth"
            )
        text = _scalar_text(key).strip().casefold()
        if text in folded:
            raise MappingError(
                f"{where}: {name}: 'map' has the key {_excerpt(key)} twice (case-blind)"
            )
        folded[text] = _scalar_text(value) if isinstance(value, bool) else value
    return folded


_BOOLEAN_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def _is_scalar(value: Any) -> bool:
    """A text, number or true/false: what a cell or a constant can be."""
    return isinstance(value, str | int | float) and value != ""


def _scalar_text(value: Any) -> str:
    # true/false keys match the TRUE/FALSE of Excel boolean cells (see cell_text).
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_formats(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    formats = [raw] if isinstance(raw, str) else raw
    if not isinstance(formats, list) or not all(isinstance(f, str) and f for f in formats):
        raise MappingError(
            f'{where}: activityDate.format must be a strptime format like "%m/%d/%Y %H:%M"'
            " or a list of them"
        )
    for fmt in formats:
        if "%" not in fmt:
            raise MappingError(
                f"{where}: activityDate.format {_excerpt(fmt)} has no % codes; write e.g."
                ' "%m/%d/%Y %H:%M" (see strftime codes)'
            )
    return tuple(formats)


def _check_keys(section: AnyMapping[Any, Any], allowed: Sequence[str], where: str, label: str):
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
            raise MappingError(f"{where}: unknown key {_excerpt(key)} in {label}; {hint}")


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return (
            f"line {mark.line + 1}, column {mark.column + 1}: {problem}. It is not valid YAML;"
            " check indentation, and quote text containing ':' or '{'"
        )
    return f"not valid YAML: {problem}"


_SHOWN_COLUMNS = 12  # column names listed when none is close
_SHOWN_CHARS = 40  # characters of one column name in a message


def _missing_column_message(
    field_name: str, column: str, header: Sequence[str], where: str = "the file"
) -> str:
    # The header is the dropped file's first line, whatever it holds (a secret, an escape
    # sequence, megabytes): messages show short, escaped excerpts of it, never the line.
    choices = {name[:200]: name for name in header if name}  # difflib is quadratic in length
    close = difflib.get_close_matches(column, choices, n=1, cutoff=0.5)
    if not close:
        folded = {name.casefold(): name for name in choices}
        close = [folded[c] for c in difflib.get_close_matches(column.casefold(), folded, n=1)]
    if close:
        hint = f"closest existing column: '{_shown(choices[close[0]])}'"
    else:
        names = list(choices.values())
        hint = "columns: " + ", ".join(_shown(name) for name in names[:_SHOWN_COLUMNS])
        if len(names) > _SHOWN_COLUMNS:
            hint += f" and {len(names) - _SHOWN_COLUMNS} more"
    return f"{field_name}: column '{column}' is not in {where} ({hint})"


def _shown(name: str) -> str:
    """A column name as a message shows it: cut to 40 characters, unprintables escaped."""
    if len(name) > _SHOWN_CHARS:
        name = name[: _SHOWN_CHARS - 1] + "…"
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in name
    )
