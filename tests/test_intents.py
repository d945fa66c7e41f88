"""Understanding typed messages: procedures/text.normalize, flows/intents.py and their data.

The labelled set tests/data/messages.yaml holds what people really type (without
diacritics, abbreviations, typos, questions in the middle of a form). The classifier must
get kind, procedure and topic all right on at least 90% of it, and every message must get
a non-empty reply.
"""

from __future__ import annotations

import datetime as dt
import shutil
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.intents import (
    CONFIDENT,
    KINDS,
    TOPICS,
    UNSURE,
    Intent,
    IntentModel,
    answer_context,
    redact,
    render_reply,
    shared_intents,
    top_questions,
)
from procedures.loader import ProcedureError, load_catalog
from procedures.text import fold, normalize

HERE = Path(__file__).resolve().parent
MESSAGES = HERE / "data" / "messages.yaml"
TINY = HERE / "fixtures" / "tiny_permit"
TODAY = dt.date(2026, 11, 27)
HN = "xac_nhan_tinh_trang_hon_nhan"
KS = "cap_ban_sao_trich_luc_khai_sinh"
MIN_ACCURACY = 0.90


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def model(catalog) -> IntentModel:
    return IntentModel.from_catalog(catalog)


def _labelled() -> list[dict[str, Any]]:
    raw = yaml.safe_load(MESSAGES.read_text(encoding="utf-8"))
    procs = raw["procedures"]
    out = []
    for item in raw["messages"]:
        out.append(
            {
                "text": item["text"],
                "kind": item["kind"],
                "proc": procs.get(item.get("proc")),
                "topic": item.get("topic"),
                "cur": procs.get(item.get("cur")),
                "valid_answer": bool(item.get("valid_answer")),
            }
        )
    return out


LABELLED = _labelled()


# ---------------------------------------------------------------- the labelled set


def test_labelled_set_is_big_and_varied() -> None:
    assert len(LABELLED) >= 300
    kinds = Counter(m["kind"] for m in LABELLED)
    assert set(kinds) == set(KINDS), set(KINDS) - set(kinds)
    topics = {m["topic"] for m in LABELLED if m["kind"] == "question"}
    assert topics == set(TOPICS)
    texts = [m["text"] for m in LABELLED]
    assert len(set(texts)) == len(texts), "a message is listed twice"
    assert sum(1 for t in texts if t.isascii()) >= 150  # most people type without diacritics
    assert sum(1 for m in LABELLED if m["cur"]) >= 100  # typed in the middle of a form
    for m in LABELLED:
        assert m["kind"] in KINDS
        assert m["topic"] is None or m["topic"] in TOPICS
        assert (m["topic"] is not None) == (m["kind"] == "question"), m


def test_accuracy_on_labelled_set(model: IntentModel) -> None:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    wrong = []
    for m in LABELLED:
        got = model.classify(m["text"], m["cur"])
        total[m["kind"]] += 1
        if (got.kind, got.procedure, got.topic) == (m["kind"], m["proc"], m["topic"]):
            right[m["kind"]] += 1
        else:
            wrong.append((m["text"], (m["kind"], m["proc"], m["topic"]), got))
    print()
    for kind in KINDS:
        if total[kind]:
            print(f"{kind:16} {right[kind]:4}/{total[kind]:<4} {right[kind] / total[kind]:6.1%}")
    overall = sum(right.values()) / sum(total.values())
    print(f"{'overall':16} {sum(right.values()):4}/{sum(total.values()):<4} {overall:6.1%}")
    for text, expected, got in wrong:
        print(f"  WRONG {text!r}: expected {expected}, got {got.kind, got.procedure, got.topic}")
    assert overall >= MIN_ACCURACY, f"intent accuracy {overall:.1%} < {MIN_ACCURACY:.0%}"


def test_never_silent(catalog, model: IntentModel) -> None:
    silent = []
    for m in LABELLED:
        intent = model.classify(m["text"], m["cur"])
        answers = {} if m["cur"] else None
        text = render_reply(catalog, intent, answers, TODAY)
        if not text.strip():
            silent.append(m["text"])
    assert not silent, f"no reply for {silent}"


def test_valid_answers_are_not_requests(model: IntentModel) -> None:
    answers = [m for m in LABELLED if m["valid_answer"]]
    assert len(answers) >= 20
    extra = ["co", "khong", "Có", "Không", "2", "12/3/1990", "Nguyễn Văn An", "ok", "ừ"]
    for text in [m["text"] for m in answers] + extra:
        for cur in (None, HN, KS):
            got = model.classify(text, cur)
            assert got.kind == "unknown" or got.score < UNSURE, (text, cur, got)


def test_scores_mean_what_they_say(model: IntentModel) -> None:
    sure = model.classify("gặp cán bộ")
    assert sure.kind == "officer" and sure.confident and not sure.unsure
    unsure = model.classify("thoi")  # "thôi" alone: maybe cancel, ask first
    assert unsure.kind == "cancel" and unsure.unsure
    purpose = model.classify("vay ngân hàng")  # a purpose alone: ask before starting
    assert purpose.kind == "start_procedure" and purpose.procedure == HN and purpose.unsure
    nothing = model.classify("trời nóng quá")
    assert nothing.kind == "unknown" and nothing.score < UNSURE
    assert model.classify("") == Intent("unknown")
    assert model.classify("   ?!  ").kind == "unknown"


def test_question_mid_form_refers_to_current_procedure(model: IntentModel) -> None:
    assert model.classify("bao nhiêu tiền", HN).procedure == HN
    assert model.classify("bao nhiêu tiền", KS).procedure == KS
    # a procedure named in the question wins over the one being filled
    got = model.classify("trích lục khai sinh mất bao lâu", HN)
    assert (got.kind, got.procedure, got.topic) == ("question", KS, "time")
    # no procedure at all: the bot asks which one
    free = model.classify("bao nhiêu tiền")
    assert free.procedure is None and set(free.candidates) == {HN, KS}
    # an unknown current procedure is ignored
    assert model.classify("bao nhiêu tiền", "no_such_procedure").procedure is None


def test_ambiguous_birth_certificate(model: IntentModel) -> None:
    got = model.classify("làm giấy khai sinh")
    assert got.kind == "ambiguous" and got.candidates == (KS,)
    assert got.entry == "make_birth_certificate"
    # the rest of the message settles it
    assert model.classify("làm lại giấy khai sinh vì bị mất").kind == "start_procedure"
    assert model.classify("làm giấy khai sinh cho con mới sinh").entry == "first_birth"
    both = model.classify("xin giấy kết hôn")
    assert both.kind == "ambiguous" and set(both.candidates) == {HN, KS}


def test_clear_questions(model: IntentModel) -> None:
    assert model.is_clear_question("bao nhiêu tiền?", HN)
    assert model.is_clear_question("mat may ngay vay", KS)
    assert not model.is_clear_question("Để vay vốn ngân hàng Agribank", HN)
    assert not model.is_clear_question(
        "Kết hôn với anh Lee Min Ho, quốc tịch Hàn Quốc, tại Hàn Quốc", HN
    )
    assert not model.is_clear_question("gặp cán bộ", HN)


def test_explanation_holds_no_personal_data(model: IntentModel) -> None:
    got = model.classify("Nguyễn Văn An 0912345678 muốn gặp cán bộ")
    assert got.kind == "officer"
    assert got.matched and all("nguyen" not in m and "0912" not in m for m in got.matched)


def test_deterministic(catalog, model: IntentModel) -> None:
    again = IntentModel.from_catalog(catalog)
    for m in LABELLED[::7]:
        assert model.classify(m["text"], m["cur"]) == again.classify(m["text"], m["cur"])


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "raw, folded",
    [
        ("Giấy ĐỘC THÂN", "giay doc than"),
        (unicodedata.normalize("NFD", "Giấy độc thân"), "giay doc than"),
        (unicodedata.normalize("NFC", "Trích lục"), "trich luc"),
        ("ddang ky", "dang ky"),
        ("vie6t nam", "viet nam"),  # VNI digits inside a word
        ("d9a8ng ky1", "dang ky1"),  # inside: dropped; at the end: kept by fold
        ("tie61ng", "tieng"),
        ("CCCD 060196008899", "cccd 060196008899"),  # numbers stay whole
        ("12/3/1990", "12 3 1990"),
        ("0912.345.678", "0912 345 678"),
        ("M12345678", "m12345678"),
        ("q1 p12 b2", "q1 p12 b2"),  # a digit after a consonant is kept
        ("25/2021/QĐST-HNGĐ", "25 2021 qdst hngd"),
        ("8k", "8k"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("Ko biết đc ko?", "khong biet duoc khong"),
        ("k bt lm j", "khong biet lam gi"),
        ("bn tiền vậy", "bao nhieu tien vay"),
        ("bn oi", "ban oi"),  # "bạn" in a greeting
        ("xin gks", "xin giay khai sinh"),
        ("làm XNTTHN", "lam xac nhan tinh trang hon nhan"),
        ("sdt cán bộ", "so dien thoai can bo"),
        ("cccd vs cmnd", "can cuoc cong dan voi chung minh nhan dan"),
        ("ntn", "nhu the nao"),
        ("thaan", "than"),  # Telex doubled vowel
        ("ddoocj thaan", "docj than"),  # tone letter at the end is left to the matcher
        ("cuwowis", "cuois"),
        ("xoong", "xoong"),  # a real word with a double vowel
        ("CCCD 060196008899", "can cuoc cong dan 060196008899"),
        ("12/3/1990", "12 3 1990"),
        ("", ""),
        ("👍", ""),
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert normalize(raw) == normalized


def test_normalize_nfc_and_nfd_agree() -> None:
    for text in ("Tôi muốn làm giấy xác nhận tình trạng hôn nhân", "Đăng ký khai sinh"):
        assert normalize(unicodedata.normalize("NFD", text)) == normalize(
            unicodedata.normalize("NFC", text)
        )


def test_matcher_repairs_words_it_knows(model: IntentModel) -> None:
    assert model.tokens("giays ddoocj thaan") == ["giay", "doc", "than"]  # Telex tones
    assert model.tokens("giay d9o65c tha6n") == ["giay", "doc", "than"]  # VNI
    assert model.tokens("giaydocthan") == ["giay", "doc", "than"]  # run together
    assert model.tokens("trick luc") == ["trich", "luc"]  # one typo
    assert model.tokens("Nguyễn Thị Lan 060196008899") == [
        "nguyen",
        "thi",
        "lan",
        "060196008899",
    ]


# ---------------------------------------------------------------- answers


def _yaml_texts(catalog) -> set[str]:
    texts: set[str] = set()
    for proc in catalog.ordered():
        for facts in (
            proc.fee,
            proc.processing_time,
            proc.agency,
            proc.who_may_apply,
            proc.validity,
        ):
            texts.update(f.text for f in facts)
        texts.update(d.text for d in proc.documents)
        texts.add(" ".join(proc.summary.split()))
        texts.update(" ".join(f.help.split()) for f in proc.fields if f.help)  # VNeID fragment
    for facts in shared_intents().answers.values():
        texts.update(f.text for f in facts)
    for folder in catalog.folders.values():
        path = folder / "intents.yaml"
        if path.is_file():
            for entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("faq", []):
                texts.update(a["text"] for a in entry["answer"])
    return texts


def _from_yaml(text: str, texts: set[str]) -> bool:
    if text in texts:
        return True
    # a fact with a template: the words before the first "{{" must be there
    return any("{" in t and text.startswith(t.split("{")[0].strip()) for t in texts)


ANSWER_SETS: dict[str, list[dict[str, Any] | None]] = {
    HN: [
        None,
        {},
        {"purpose": "bank_loan", "marital_status": "divorced", "registration_type": "first"},
        {
            "purpose": "land",
            "marital_status": "widowed",
            "registration_type": "reissue",
            "requester_relationship": "mother",
        },
    ],
    KS: [
        None,
        {},
        {"requested_document": "birth", "requester_relationship": "self"},
        {"requested_document": "death", "requester_relationship": "other"},
    ],
}


@pytest.mark.parametrize("topic", [t for t in TOPICS if t != "faq"])
@pytest.mark.parametrize("proc_id", [HN, KS])
def test_every_topic_renders_from_yaml(catalog, topic: str, proc_id: str) -> None:
    texts = _yaml_texts(catalog)
    for answers in ANSWER_SETS[proc_id]:
        intent = Intent("question", proc_id, topic, 0.95)
        ctx = answer_context(catalog, intent, answers, TODAY)
        assert ctx["macro"] == topic
        reply = render_reply(catalog, intent, answers, TODAY)
        assert reply.strip()
        for item in ctx["facts"] + ctx["docs"]:
            assert _from_yaml(item["text"], texts), item["text"]
            assert item["text"].split(".")[0] in reply
            if item["unconfirmed"]:
                assert "theo hướng dẫn hiện hành" in reply
        if topic not in ("validity",) or ctx["facts"]:
            assert ctx["facts"] or ctx["docs"], (topic, proc_id, answers)
        # back to the form, or an offer to start
        in_draft = answers is not None
        assert ("Mình hỏi tiếp" in reply) == in_draft
        assert ("Bắt đầu" in reply) == (not in_draft)


def test_facts_keep_unconfirmed_flag(catalog) -> None:
    ctx = answer_context(catalog, Intent("question", HN, "fee", 0.9), None, TODAY)
    flags = {f["text"][:30]: f["unconfirmed"] for f in ctx["facts"]}
    assert True in flags.values() and False in flags.values()
    account = answer_context(catalog, Intent("question", HN, "account", 0.9), None, TODAY)
    assert any(f["unconfirmed"] for f in account["facts"])


def test_facts_depend_on_the_date(catalog) -> None:
    during = answer_context(catalog, Intent("question", KS, "fee", 0.9), None, TODAY)
    after = answer_context(catalog, Intent("question", KS, "fee", 0.9), None, dt.date(2027, 6, 1))
    assert len(during["facts"]) == len(after["facts"]) + 1
    assert any("66.22" in f["text"] for f in during["facts"])
    assert not any("66.22" in f["text"] for f in after["facts"])


def test_documents_follow_the_answers(catalog) -> None:
    intent = Intent("question", HN, "documents", 0.9)
    blank = answer_context(catalog, intent, None, TODAY)
    assert blank["pending_documents"]
    assert all("ly hôn" not in d["text"] for d in blank["docs"])
    assert any("Tờ khai" in d["text"] for d in blank["docs"])
    reply = render_reply(catalog, intent, None, TODAY)
    assert "Tùy trường hợp của bạn" in reply
    answers = {
        "marital_status": "divorced",
        "registration_type": "first",
        "requester_relationship": "self",
    }
    full = answer_context(catalog, intent, answers, TODAY)
    assert not full["pending_documents"]
    texts = " ".join(d["text"] for d in full["docs"])
    assert "ly hôn" in texts and "chứng tử" not in texts and "ủy quyền" not in texts
    widowed = answer_context(catalog, intent, {**answers, "marital_status": "widowed"}, TODAY)
    assert "chứng tử" in " ".join(d["text"] for d in widowed["docs"])


def test_faq_entries_render(catalog, model: IntentModel) -> None:
    texts = _yaml_texts(catalog)
    entries = [(pid, e.id) for pid, data in model.data.procedures.items() for e in data.faq]
    assert len(entries) >= 4
    for pid, entry in entries:
        intent = Intent("question", pid, "faq", 0.9, entry=entry)
        ctx = answer_context(catalog, intent, None, TODAY)
        assert ctx["macro"] == "faq" and ctx["facts"]
        reply = render_reply(catalog, intent, None, TODAY)
        for f in ctx["facts"]:
            assert _from_yaml(f["text"], texts)
            assert f["text"][:40] in reply


def test_clarifying_questions_render(catalog, model: IntentModel) -> None:
    amb = model.classify("làm giấy khai sinh")
    ctx = answer_context(catalog, amb, None, TODAY)
    assert ctx["macro"] == "clarify" and ctx["mode"] == "ambiguous"
    assert [o["token"] for o in ctx["options"]] == [f"p:{KS}", f"f:{KS}:first_birth"]
    reply = render_reply(catalog, amb, None, TODAY)
    assert all(o["label"] in reply for o in ctx["options"])
    which = answer_context(catalog, model.classify("bao nhiêu tiền"), None, TODAY)
    assert which["mode"] == "which" and {o["procedure"] for o in which["options"]} == {HN, KS}
    unsure = Intent("question", HN, "fee", 0.6)
    assert answer_context(catalog, unsure, {}, TODAY)["mode"] == "confirm"
    assert "phí" in render_reply(catalog, unsure, {}, TODAY)
    for kind in ("start_procedure", "cancel", "officer", "stop_reminders", "resume", "help"):
        reply = render_reply(catalog, Intent(kind, HN, None, 0.6), None, TODAY)
        assert reply.strip(), kind


def test_every_kind_renders(catalog) -> None:
    for kind in KINDS:
        for score in (0.2, 0.6, 0.95):
            for answers in (None, {}):
                proc = HN if kind in ("start_procedure", "question") else None
                topic = "fee" if kind == "question" else None
                intent = Intent(kind, proc, topic, score, candidates=(HN, KS))
                assert render_reply(catalog, intent, answers, TODAY).strip(), (kind, score)
    unknown = render_reply(catalog, Intent("unknown"), {}, TODAY)
    assert "Mình chưa hiểu" in unknown and "câu hỏi dưới đây" in unknown


# ---------------------------------------------------------------- unknown messages


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("sdt em 0912345678", "sdt em [số điện thoại]"),
        ("goi 0912 345 678 nhe", "goi [số điện thoại] nhe"),
        ("so +84 912 345 678", "so [số điện thoại]"),
        ("84912345678", "[số điện thoại]"),
        ("0912.345.678", "[số điện thoại]"),
        ("ban 0263 3123 456", "ban [số điện thoại]"),
        ("cccd 060196008899 ạ", "cccd [số giấy tờ] ạ"),
        ("cmnd 261234567", "cmnd [số giấy tờ]"),
        ("060 196 008 899", "[số giấy tờ]"),
        ("0912345678 060196008899", "[số điện thoại] [số giấy tờ]"),
        ("hộ chiếu C1234567", "hộ chiếu [số giấy tờ]"),
        ("mail hung.nguyen@gmail.com nhe", "mail [thư điện tử] nhe"),
        ("sinh 12/3/1990", "sinh [ngày sinh]"),
        ("ngày 5 tháng 11 năm 2019", "[ngày sinh]"),
        ("12-03-90 á", "[ngày sinh] á"),
        ("sinh năm 1990", "[ngày sinh]"),
        ("bao nhiêu tiền 1 bản", "bao nhiêu tiền 1 bản"),  # no personal data: unchanged
        ("phí 8.000 đồng", "phí 8.000 đồng"),
        ("mã 1234567", "mã [số]"),
    ],
)
def test_redact(raw: str, expected: str) -> None:
    assert redact(raw) == expected


def test_redaction_placeholders_come_from_yaml() -> None:
    ph = shared_intents().redaction
    assert set(ph) >= {"id_number", "phone", "email", "date", "number"}
    assert redact("0912345678") == ph["phone"]


def test_top_questions() -> None:
    texts = [
        "bao nhiêu tiền",
        "Bao nhieu tien?",
        "bn tiền",
        "mất mấy ngày",
        "mat may ngay",
        "lam o dau",
        "",
        "👍",
    ]
    top = top_questions(texts)
    assert top[0] == ("bao nhiêu tiền", 3)
    assert top[1] == ("mất mấy ngày", 2)
    assert top[2] == ("lam o dau", 1)
    assert len(top) == 3
    assert top_questions(texts, n=1) == [("bao nhiêu tiền", 3)]
    assert top_questions([]) == []


# ---------------------------------------------------------------- the data files


def _tiny_copy(tmp_path: Path, intents: str | None) -> Path:
    root = tmp_path / "procs"
    shutil.copytree(TINY, root / "tiny_permit")
    if intents is not None:
        (root / "tiny_permit" / "intents.yaml").write_text(intents, encoding="utf-8")
    return root


def test_officer_adds_a_phrase_without_code(tmp_path: Path) -> None:
    root = _tiny_copy(tmp_path, "names:\n  strong: [giấy cho chó]\npurposes: [nuôi chó]\n")
    catalog = load_catalog([root], include_builtin=False)
    model = IntentModel.from_catalog(catalog)
    got = model.classify("xin giay cho cho")
    assert (got.kind, got.procedure) == ("start_procedure", "tiny_permit")
    assert model.classify("giấy nuôi chó").procedure == "tiny_permit"  # an alias
    fee = model.classify("bao nhieu tien", "tiny_permit")
    assert (fee.kind, fee.procedure, fee.topic) == ("question", "tiny_permit", "fee")
    reply = render_reply(catalog, fee, {}, TODAY)
    assert "0 đồng." in reply


def test_a_procedure_without_intents_file_still_works(tmp_path: Path) -> None:
    catalog = load_catalog([_tiny_copy(tmp_path, None)], include_builtin=False)
    model = IntentModel.from_catalog(catalog)
    assert model.classify("giấy nuôi chó").procedure == "tiny_permit"


@pytest.mark.parametrize(
    "intents, problem",
    [
        (
            "faq:\n  - id: x\n    strong: [a b]\n    answer:\n      - text: T\n        sources: [nope]\n",
            "unknown source",
        ),
        (
            "ambiguous:\n  - id: y\n    strong: [a b]\n    options:\n"
            "      - {label: A, procedure: tiny_permit}\n      - {label: B, procedure: nope}\n",
            "unknown procedure",
        ),
        ("names:\n  strongest: [a]\n", "strongest"),
        ("faq:\n  - id: z\n    strong: [a]\n    answer: []\n", "no answer"),
    ],
)
def test_broken_intents_file_names_the_problem(tmp_path: Path, intents: str, problem: str) -> None:
    catalog = load_catalog([_tiny_copy(tmp_path, intents)], include_builtin=False)
    with pytest.raises(ProcedureError) as err:
        IntentModel.from_catalog(catalog)
    assert problem in str(err.value) and "intents.yaml" in str(err.value)


def test_confidence_thresholds() -> None:
    assert UNSURE < CONFIDENT
    assert Intent("help", score=0.75).confident
    assert Intent("help", score=0.5).unsure and not Intent("help", score=0.5).confident
