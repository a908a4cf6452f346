from __future__ import annotations

from django import forms

from events.personal.models import VIEW_PAGES, Preference

MAX_QUERY = 8000


class SavedViewForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, help_text="What you will look for it by.")
    page = forms.ChoiceField(choices=list(VIEW_PAGES.items()), initial="/events/")
    query = forms.CharField(required=False, max_length=MAX_QUERY, strip=True)


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = Preference
        fields = ["time_zone", "relative_times"]
