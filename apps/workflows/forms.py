"""
Forms of the workflow pages: the name of a new workflow, and the run form that a published
version's `input_schema` (a JSON Schema object) turns into.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.workflows.models import Workflow

# A string input without a small maxLength is most often a message or a document: a text area.
SHORT_TEXT = 200


class WorkflowCreateForm(forms.ModelForm):
    class Meta:
        model = Workflow
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"description": _("Optional: what the workflow is for.")}


class EnumField(forms.TypedChoiceField):
    """A select over a schema's `enum`: options are JSON text, so numbers and booleans come back typed."""

    def __init__(self, options: list, **kwargs: Any) -> None:
        choices = [(json.dumps(value), value if isinstance(value, str) else json.dumps(value)) for value in options]
        # A blank first option: nothing is chosen for the user, and the browser may mark it required.
        choices.insert(0, ("", "—"))
        super().__init__(choices=choices, coerce=json.loads, empty_value=None, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if value is None or value == "":
            return ""
        # The initial value is the typed default; what was posted back is already JSON text.
        return value if isinstance(value, str) and self._is_choice(value) else json.dumps(value)

    def _is_choice(self, text: str) -> bool:
        return any(text == key for key, _label in self.choices)


def schema_field(name: str, schema: dict, *, required: bool) -> forms.Field:
    """One form field for the property `name` of an input schema."""
    options: dict[str, Any] = {
        "label": schema.get("title") or name,
        "required": required,
        "help_text": schema.get("description", ""),
    }
    if "default" in schema:
        options["initial"] = schema["default"]
    kind = schema.get("type")
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return EnumField(schema["enum"], **options)
    if kind == "string":
        max_length = schema.get("maxLength")
        short = isinstance(max_length, int) and max_length <= SHORT_TEXT
        widget = forms.TextInput if short else forms.Textarea(attrs={"rows": 4})
        return forms.CharField(
            widget=widget, max_length=max_length, min_length=schema.get("minLength"), strip=False, **options
        )
    if kind == "integer":
        return forms.IntegerField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **options)
    if kind == "number":
        return forms.FloatField(min_value=schema.get("minimum"), max_value=schema.get("maximum"), **options)
    if kind == "boolean":
        # An unticked box is a real answer (false), so a checkbox is never "missing".
        options["required"] = False
        return forms.BooleanField(**options)
    # Objects, arrays and untyped values are typed as JSON.
    options["help_text"] = options["help_text"] or _("JSON, for example {example}.").format(
        example='{"key": "value"}' if kind == "object" else '["a", "b"]' if kind == "array" else '"text"'
    )
    return forms.JSONField(widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}), **options)


class RunForm(forms.Form):
    """The inputs of one run, generated from the version's input schema."""

    def __init__(self, *args: Any, input_schema: dict, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        required = set(input_schema.get("required", []))
        for name, schema in input_schema.get("properties", {}).items():
            schema = schema if isinstance(schema, dict) else {}
            self.fields[name] = schema_field(name, schema, required=name in required)

    def inputs(self) -> dict[str, Any]:
        """The cleaned values to run with; a blank optional field is left out, so its default applies."""
        values = {}
        for name, value in self.cleaned_data.items():
            if value is None or (value == "" and not self.fields[name].required):
                continue
            values[name] = value
        return values
