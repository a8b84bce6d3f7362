"""The Simplified Chinese catalogue in use (issue 17): pages, CRF labels and their choices
render in Chinese for a reader whose language is zh-hans, and stay English otherwise. The scale
wordings asserted here are those of the glossary (docs/glossary.zh-Hans.md)."""

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext, ngettext

from edc import protocol
from forms.entry.views import _derived_shown
from forms.models.adverse_events import AdverseEvent
from forms.models.labs import LabPanel
from forms.models.medications import ConcomitantMedication
from forms.models.nihss import NIHSS
from forms.models.scales import MRS, Barthel
from tests.factories import screened_subject

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _choice(model, field: str, value) -> str:
    return str(dict(model._meta.get_field(field).choices)[value])


def test_login_page_in_chinese(client, db):
    page = client.get(reverse("login"), **CHINESE).content.decode()
    assert "登录" in page
    assert "用户名" in page
    assert "密码" in page
    assert "Username" not in page


def test_login_page_in_english_without_a_chinese_browser(client, db):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Username" in page
    assert "用户名" not in page


@pytest.mark.parametrize(("read", "chinese"), [
    (lambda: NIHSS._meta.get_field("loc").verbose_name, "1a. 意识水平"),
    # The response options are built from the meanings: they must follow the reader's language
    # too, not the language active when the model was imported.
    (lambda: _choice(NIHSS, "loc", "0"), "0 — 清醒，反应灵敏"),
    (lambda: _choice(NIHSS, "best_language", "3"), "3 — 哑或完全性失语"),
    (lambda: _choice(MRS, "score", 6), "6 — 死亡"),
    (lambda: _choice(MRS, "score", 3), "3 — 中度残疾，需部分帮助，但能独立行走"),
    (lambda: Barthel._meta.get_field("bowels").verbose_name, "控制大便"),
    (lambda: _choice(AdverseEvent, "ctcae_grade", 4), "4 — 危及生命"),
    (lambda: AdverseEvent._meta.get_field("is_serious").verbose_name, "严重"),
    (lambda: _choice(ConcomitantMedication, "corticosteroid", "dexamethasone"), "地塞米松"),
    (lambda: protocol.crf("adverse_event").label, "不良事件"),
])
def test_crf_labels_and_choices_in_chinese(read, chinese):
    with translation.override("zh-hans"):
        assert str(read()) == chinese
    with translation.override("en"):
        assert str(read()) != chinese


def test_placeholders_and_the_one_plural_form():
    with translation.override("zh-hans"):
        assert gettext("Page %(n)s of %(total)s") % {"n": 2, "total": 5} == "第 2 页，共 5 页"
        for n in (1, 2, 21):
            assert (ngettext("%(n)s subject", "%(n)s subjects", n) % {"n": n}
                    == f"{n} 例受试者")


def test_edit_check_specification_in_chinese(client, nurse):
    client.force_login(nurse)
    page = client.get(reverse("forms:edit_checks"), **CHINESE).content.decode()
    assert "逻辑核查说明" in page
    assert "软核查" in page
    assert "访视日期超出访视窗" in page


def test_data_dictionary_page_in_chinese(client, users):
    client.force_login(users["data_manager"])
    page = client.get(reverse("exports:dictionary"), **CHINESE).content.decode()
    assert "数据字典" in page
    assert "筛选号" in page
    assert "受试者与筛选日志" in page
    assert "Screening number" not in page


def test_screening_log_counts_name_the_status_in_chinese(client, nurse, site):
    screened_subject(site=site, user=nurse)
    client.force_login(nurse)
    page = client.get(reverse("visits:screening_log"), **CHINESE).content.decode()
    assert "<td>筛选</td>" in page
    assert "<td>screening</td>" not in page


def test_a_computed_lab_flag_is_shown_by_its_label():
    panel = LabPanel(ast_flag="high", alt_flag="")
    with translation.override("zh-hans"):
        assert _derived_shown(panel, "ast_flag") == "偏高"
        assert _derived_shown(panel, "alt_flag") == ""
