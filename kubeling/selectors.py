"""Label and field selectors, parsed and matched like apimachinery's
`labels.Parse` / `metav1.LabelSelectorAsSelector` / `fields.ParseSelector`,
plus the fields each kind exposes to field selectors."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubeling.resources import Resource
from kubeling.validation.formats import label_value, qualified_name

# --- label key/value validation: the same rules as object validation -----------

def label_key_errors(key: str) -> list[str]:
    """Why `key` is not a valid label key (a qualified name); [] when valid."""
    return qualified_name(key)


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a valid label value; [] when valid."""
    return label_value(value)


def _invalid(path: str, value: object, detail: str) -> str:
    # field.Invalid(...).Error(); an unset path prints as "<nil>" in Go.
    shown = f'"{value}"' if isinstance(value, str) else "[" + " ".join(map(str, value)) + "]"
    return f"{path}: Invalid value: {shown}: {detail}"


# --- label selectors --------------------------------------------------------

LABEL_OPERATORS = ("in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!")
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"


@dataclass(frozen=True)
class Requirement:
    """One label requirement. operator is one of: in, notin, =, ==, !=, gt, lt,
    exists, ! (does not exist) — apimachinery's selection.Operator strings."""
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        op = self.operator
        if op in ("in", "=", "=="):
            return present and value in self.values
        if op in ("notin", "!="):
            return not present or value not in self.values
        if op == "exists":
            return present
        if op == "!":
            return not present
        if op in ("gt", "lt"):
            if not present or len(self.values) != 1:
                return False
            try:
                have, want = _go_int(value), _go_int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "gt" else have < want
        return False

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return "!" + self.key
        values = ",".join(sorted(self.values))
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({values})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{values}"


def _go_int(value: object) -> int:
    # strconv.ParseInt(v, 10, 64): optional sign, decimal digits only.
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(value)
    number = int(value)
    if not -(2 ** 63) <= number < 2 ** 63:
        raise ValueError(value)
    return number


@dataclass(frozen=True)
class LabelSelector:
    """AND of requirements. `nothing` is the selector that matches no object
    (a nil metav1.LabelSelector); no requirements matches every object."""
    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Any) -> bool:
        if self.nothing:
            return False
        if not isinstance(labels, dict):
            labels = {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when it selects everything."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def new_requirement(key: str, operator: str, values: list[str] | tuple[str, ...],
                    path: str = "") -> Requirement:
    """Validated Requirement, like labels.NewRequirement; ValueError otherwise."""
    errs: list[str] = []
    key_path = f"{path}.key" if path else "key"
    values_path = f"{path}.values" if path else "values"
    key_errs = label_key_errors(key)
    if key_errs:
        errs.append(_invalid(key_path, key, "; ".join(key_errs)))
    values = list(values)
    if operator in ("in", "notin"):
        if not values:
            errs.append(_invalid(values_path, values,
                                 "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in ("=", "==", "!="):
        if len(values) != 1:
            errs.append(_invalid(values_path, values,
                                 "exact-match compatibility requires one single value"))
    elif operator in ("exists", "!"):
        if values:
            errs.append(_invalid(values_path, values,
                                 "values set must be empty for exists and does not exist"))
    elif operator in ("gt", "lt"):
        if len(values) != 1:
            errs.append(_invalid(values_path, values,
                                 "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(values):
            try:
                _go_int(v)
            except ValueError:
                errs.append(_invalid(f"{values_path}[{i}]", v,
                                     "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        errs.append(f'{path + "." if path else ""}operator: Unsupported value: "{operator}": '
                    "supported values: " + ", ".join(f'"{o}"' for o in LABEL_OPERATORS))
    for i, v in enumerate(values):
        v_errs = label_value_errors(v)
        if v_errs:
            errs.append(_invalid(f"{values_path}[{i}][{key}]", v, "; ".join(v_errs)))
    if errs:
        raise ValueError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, operator, tuple(values))


# Lexer tokens.
_END, _IDENT, _COMMA, _OPEN, _CLOSE, _NOT, _EQ, _DEQ, _NEQ, _GT, _LT, _IN, _NOTIN, _ERR = range(14)
_SYMBOLS = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT,
            "<": _LT, "!=": _NEQ, "(": _OPEN}
_KEYWORDS = {"in": _IN, "notin": _NOTIN}
_SPECIAL = set("=!(),><")
_SPACE = set(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _SPACE:
            i += 1
        if i >= n:
            tokens.append((_END, ""))
            return tokens
        if s[i] in _SPECIAL:
            # Longest run of special characters that is still a known symbol.
            buf, last, last_end = "", None, i
            j = i
            while j < n and s[j] in _SPECIAL:
                buf += s[j]
                j += 1
                if buf in _SYMBOLS:
                    last, last_end = (_SYMBOLS[buf], buf), j
                elif last is not None:
                    break
            if last is None:
                tokens.append((_ERR, f"error expected: keyword found '{buf}'"))
                i = j
            else:
                tokens.append(last)
                i = last_end
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in _SPACE:
            j += 1
        word = s[i:j]
        tokens.append((_KEYWORDS.get(word, _IDENT), word))
        i = j


class _Parser:
    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    def _peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        # In value position the keywords are ordinary words: `x in (in)`.
        if values and tok in (_IN, _NOTIN):
            tok = _IDENT
        return tok, lit

    def _take(self, values: bool = True) -> tuple[int, str]:
        item = self._peek(values)
        self.pos += 1
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok == _END:
                return reqs
            if tok not in (_IDENT, _NOT):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self._requirement())
            except ValueError as e:
                raise ValueError(f"unable to parse requirement: {e}") from None
            tok, lit = self._take()
            if tok == _END:
                return reqs
            if tok != _COMMA:
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            tok2, lit2 = self._peek()
            if tok2 not in (_IDENT, _NOT):
                raise ValueError(f"found '{lit2}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, lit = self._take()
        if tok == _NOT:
            operator = "!"
            tok, lit = self._take()
        if tok != _IDENT:
            raise ValueError(f"found '{lit}', expected: identifier")
        key_errs = label_key_errors(lit)
        if key_errs:
            raise ValueError(_invalid("<nil>", lit, "; ".join(key_errs)))
        key = lit
        # `!key` stands alone; whatever follows it is the caller's to reject.
        if operator == "!" or self._peek()[0] in (_END, _COMMA):
            return new_requirement(key, operator or "exists", [])
        tok, lit = self._take(values=False)
        operator = {_IN: "in", _NOTIN: "notin", _EQ: "=", _DEQ: "==", _NEQ: "!=",
                    _GT: "gt", _LT: "lt"}.get(tok, "")
        if not operator:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        if operator in ("in", "notin"):
            values = self._value_set()
        else:
            values = self._exact_value()
        return new_requirement(key, operator, sorted(set(values)))

    def _value_set(self) -> list[str]:
        tok, lit = self._take()
        if tok != _OPEN:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == _CLOSE:
            self._take()
            return [""]
        if tok not in (_IDENT, _COMMA):
            raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok == _IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 == _COMMA:
                    continue
                if tok2 == _CLOSE:
                    break
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _COMMA:
                # Empty entries such as "(,a)" or "(a,,b)" stand for the empty value.
                if not values:
                    values.add("")
                tok2, _ = self._peek()
                if tok2 == _CLOSE:
                    values.add("")
                    break
                if tok2 == _COMMA:
                    values.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")
        self._take()  # the closing parenthesis
        return sorted(values)

    def _exact_value(self) -> list[str]:
        tok, _ = self._peek()
        if tok in (_END, _COMMA):
            return [""]
        tok, lit = self._take()
        if tok == _IDENT:
            return [lit]
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str) -> LabelSelector:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h,i>1`; '' selects everything.
    Raises ValueError with Kubernetes' message on bad syntax or invalid keys/values."""
    if not isinstance(s, str):
        raise ValueError("label selector must be a string")
    reqs = _Parser(s).parse()
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


def label_selector_from_set(labels: Any) -> LabelSelector:
    """A selector matching exactly these labels (a Service's spec.selector);
    empty or missing selects everything — callers decide what that means."""
    if not isinstance(labels, dict):
        return LabelSelector()
    reqs = [Requirement(str(k), "=", (v if isinstance(v, str) else str(v),))
            for k, v in labels.items()]
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


_EXPRESSION_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists",
                         "DoesNotExist": "!"}


def label_selector_from_dict(d: Any) -> LabelSelector:
    """A metav1.LabelSelector (matchLabels + matchExpressions). None selects
    nothing, {} selects everything. ValueError on invalid content."""
    if d is None:
        return LabelSelector(nothing=True)
    if not isinstance(d, dict):
        raise ValueError("label selector must be an object")
    match_labels = d.get("matchLabels") or {}
    expressions = d.get("matchExpressions") or []
    if not isinstance(match_labels, dict):
        raise ValueError("matchLabels must be an object")
    if not isinstance(expressions, list):
        raise ValueError("matchExpressions must be a list")
    reqs: list[Requirement] = []
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise ValueError(_invalid(f"matchLabels[{key}]", str(value), "must be a string"))
        reqs.append(new_requirement(str(key), "=", [value]))
    for i, expr in enumerate(expressions):
        if not isinstance(expr, dict):
            raise ValueError(f"matchExpressions[{i}] must be an object")
        op = expr.get("operator")
        if op not in _EXPRESSION_OPERATORS:
            raise ValueError(f'"{op}" is not a valid label selector operator')
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"matchExpressions[{i}].values must be a list of strings")
        key = expr.get("key")
        if not isinstance(key, str):
            raise ValueError(f"matchExpressions[{i}].key must be a string")
        reqs.append(new_requirement(key, _EXPRESSION_OPERATORS[op], sorted(set(values))))
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# --- field selectors ---------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, fields: dict[str, str]) -> bool:
        # A field the object does not have reads as "" (fields.Set.Get).
        have = fields.get(self.field, "")
        return have != self.value if self.operator == "!=" else have == self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Any) -> bool:
        if not isinstance(fields, dict):
            fields = {}
        return all(r.matches(fields) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, field: str) -> str | None:
        """The value `field` must equal, if the selector pins it (e.g. metadata.name
        or spec.nodeName), so a server can narrow its read."""
        for r in self.requirements:
            if r.field == field and r.operator in ("=", "=="):
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if not any(ch in value for ch in "\\,="):
        return value
    out = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Go formats the offending rune with %v, i.e. as its code point.
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    terms, cur, escaped = [], [], False
    for ch in s:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    escaped = False
    for i, ch in enumerate(term):
        if escaped:
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def parse_field_selector(s: str) -> FieldSelector:
    """Parse `a=b,c==d,e!=f` (values may escape `\\,`, `\\=`, `\\\\`); '' selects
    everything. Raises ValueError like fields.ParseSelector."""
    if not isinstance(s, str):
        raise ValueError("field selector must be a string")
    reqs: list[FieldRequirement] = []
    for term in sorted(_split_terms(s)):
        if term == "":
            continue
        split = _split_term(term)
        if split is None:
            raise ValueError(f"invalid selector: '{s}'; can't understand '{term}'")
        lhs, op, rhs = split
        reqs.append(FieldRequirement(lhs, op, _unescape_field_value(rhs)))
    return FieldSelector(tuple(reqs))


# Selectable fields per kind, from each kind's field label conversion and
# GetAttrs in Kubernetes. Kinds not listed get the generic metadata fields.
_GENERIC_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
SUPPORTED_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork",
        "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"}),
    ("", "nodes"): frozenset({"metadata.name", "spec.unschedulable"}),
    ("", "namespaces"): frozenset({"metadata.name", "status.phase"}),
    ("", "events"): frozenset({
        "metadata.name", "metadata.namespace", "involvedObject.kind",
        "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    ("", "services"): frozenset({"metadata.name", "metadata.namespace", "spec.clusterIP",
                                 "spec.type"}),
}
# Old clients' names, rewritten before matching.
_FIELD_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("", "pods"): {"spec.host": "spec.nodeName"},
}


def supported_field_labels(resource: Resource) -> frozenset[str]:
    return SUPPORTED_FIELDS.get((resource.group, resource.plural), _GENERIC_FIELDS)


def convert_field_selector(resource: Resource, selector: FieldSelector) -> FieldSelector:
    """The selector with legacy labels renamed (pods' spec.host); ValueError
    `field label not supported: X` for a label the kind does not expose."""
    supported = supported_field_labels(resource)
    aliases = _FIELD_ALIASES.get((resource.group, resource.plural), {})
    out = []
    for r in selector.requirements:
        name = aliases.get(r.field, r.field)
        if name not in supported:
            raise ValueError(f"field label not supported: {r.field}")
        out.append(FieldRequirement(name, r.operator, r.value))
    return FieldSelector(tuple(out))


def check_field_selector(resource: Resource, selector: FieldSelector) -> None:
    """Raises ValueError(`field label not supported: X`); the apiserver turns it
    into 400 BadRequest."""
    convert_field_selector(resource, selector)


def _s(obj: Any, *path: str) -> str:
    cur = obj
    for step in path:
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(step)
    return cur if isinstance(cur, str) else ""


def _go_bool(obj: Any, *path: str) -> str:
    cur = obj
    for step in path:
        if not isinstance(cur, dict):
            return "false"
        cur = cur.get(step)
    return "true" if cur is True else "false"


def object_fields(resource: Resource, obj: Any) -> dict[str, str]:
    """The field set a field selector is matched against for this object."""
    fields = {"metadata.name": _s(obj, "metadata", "name")}
    if resource.namespaced:
        fields["metadata.namespace"] = _s(obj, "metadata", "namespace")
    key = (resource.group, resource.plural)
    if key == ("", "pods"):
        pod_ips = obj.get("status", {}).get("podIPs") if isinstance(obj, dict) and \
            isinstance(obj.get("status"), dict) else None
        first_ip = ""
        if isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], dict):
            first_ip = _s(pod_ips[0], "ip")
        fields.update({
            "spec.nodeName": _s(obj, "spec", "nodeName"),
            "spec.restartPolicy": _s(obj, "spec", "restartPolicy"),
            "spec.schedulerName": _s(obj, "spec", "schedulerName"),
            "spec.serviceAccountName": _s(obj, "spec", "serviceAccountName"),
            "spec.hostNetwork": _go_bool(obj, "spec", "hostNetwork"),
            "status.phase": _s(obj, "status", "phase"),
            "status.podIP": first_ip or _s(obj, "status", "podIP"),
            "status.nominatedNodeName": _s(obj, "status", "nominatedNodeName"),
        })
    elif key == ("", "nodes"):
        fields["spec.unschedulable"] = _go_bool(obj, "spec", "unschedulable")
    elif key == ("", "namespaces"):
        fields["status.phase"] = _s(obj, "status", "phase")
    elif key == ("", "events"):
        for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                     "fieldPath"):
            fields[f"involvedObject.{name}"] = _s(obj, "involvedObject", name)
        fields.update({
            "reason": _s(obj, "reason"),
            "reportingComponent": _s(obj, "reportingComponent"),
            "source": _s(obj, "source", "component"),
            "type": _s(obj, "type"),
        })
    elif key == ("", "services"):
        fields["spec.clusterIP"] = _s(obj, "spec", "clusterIP")
        fields["spec.type"] = _s(obj, "spec", "type")
    return fields
