"""The Simplified Chinese catalogue is complete and compiled (issue 17): every message the code
and templates mark for translation is in ``locale/zh_Hans/LC_MESSAGES/django.po``, translated,
none fuzzy, and ``django.mo`` is the compiled form of that file.

``makemessages`` runs on a copy of the sources (the repository's catalogue is never touched),
so a message added or reworded without its translation fails here, as does a translation
edited without ``compilemessages``. Needs GNU gettext (``msgfmt``, ``xgettext``; ``make test``
installs it)."""

import gettext
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)
CATALOGUE = BASE / "locale" / "zh_Hans" / "LC_MESSAGES"
# What makemessages reads: the sources, never the tests, benchmarks or generated files.
NOT_SOURCES = {"tests", "benchmarks", "docs", "var", "staticfiles", "test-artifacts", "locale",
               "node_modules", "build", "dist"}



@pytest.fixture(autouse=True, scope="module")
def _gettext_tools():
    missing = [tool for tool in ("xgettext", "msgfmt", "msgattrib") if shutil.which(tool) is None]
    assert not missing, f"GNU gettext is needed ({', '.join(missing)}): make test installs it"


def _selected(po: Path, *options: str) -> list[str]:
    """The message ids of ``po`` that ``msgattrib`` selects with ``options`` (untranslated,
    fuzzy), the header left out."""
    result = subprocess.run(["msgattrib", *options, "--no-obsolete", "--no-wrap", str(po)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [line[len('msgid "'):-1] for line in result.stdout.splitlines()
            if line.startswith('msgid "') and line != 'msgid ""']


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """The catalogue ``makemessages`` makes from the sources, merged with the repository's."""
    copy = tmp_path_factory.mktemp("sources")
    for entry in BASE.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_SOURCES:
            continue
        if entry.is_dir():
            shutil.copytree(entry, copy / entry.name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif entry.suffix == ".py":
            shutil.copy2(entry, copy / entry.name)
    shutil.copytree(BASE / "locale", copy / "locale")
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "edc.settings",
                   "PYTHONPATH": str(copy)}
    environment.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale", "zh_Hans", "--no-obsolete",
         "--verbosity", "0"],
        cwd=copy, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_message_of_the_sources_is_translated(extracted):
    """A message missing from the catalogue comes out of the merge untranslated."""
    untranslated = _selected(extracted, "--untranslated")
    assert not untranslated, (f"{len(untranslated)} messages without a translation (run "
                              f"makemessages -l zh_Hans and translate them): {untranslated[:20]}")


def test_no_translation_is_fuzzy(extracted):
    """A reworded message comes out of the merge fuzzy: its old translation needs a look."""
    fuzzy = _selected(extracted, "--only-fuzzy")
    assert not fuzzy, f"{len(fuzzy)} fuzzy translations: {fuzzy[:20]}"
    assert not _selected(CATALOGUE / "django.po", "--only-fuzzy")


def test_the_catalogue_passes_msgfmt_checks_and_the_compiled_file_is_current(tmp_path):
    compiled = tmp_path / "django.mo"
    result = subprocess.run(["msgfmt", "--check", "--statistics", "-o", str(compiled),
                             str(CATALOGUE / "django.po")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "untranslated" not in result.stderr and "fuzzy" not in result.stderr, result.stderr
    with open(compiled, "rb") as fresh, open(CATALOGUE / "django.mo", "rb") as kept:
        expected = gettext.GNUTranslations(fresh)._catalog
        actual = gettext.GNUTranslations(kept)._catalog
    stale = sorted(key for key in set(expected) | set(actual)
                   if expected.get(key) != actual.get(key))
    assert not stale, (f"django.mo is not compiled from django.po (run compilemessages): "
                       f"{len(stale)} messages differ, e.g. {stale[:5]}")
