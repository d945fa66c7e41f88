"""The 2025 communes (procedures/units.py) and the `commune` answer type.

Tests that need the pre-2025 conversion tables (vietnam-provinces 2026.x, Python >= 3.12)
skip when they are absent; everything else runs on both library versions. Unit codes can
differ between the two library versions, so rows compare names, not codes (except Bắc
Ruộng's, checked on both). The disk cache of the indexes is tested in fresh processes, each
with its own cache directory.
"""

from __future__ import annotations

import datetime as dt
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path

import pytest

from procedures import units
from procedures.model import FieldSpec
from procedures.results import Ambiguous, Confirm, Invalid, Valid
from procedures.validators import MAX_OPTIONS, error_codes, validate

TODAY = dt.date(2026, 6, 15)
BAC_RUONG = 23152
BAC_RUONG_DISPLAY = "Xã Bắc Ruộng, tỉnh Lâm Đồng"
COMMUNE = FieldSpec(id="residence", type="commune", label="Nơi cư trú", question="Bạn ở xã nào?")

needs_legacy = pytest.mark.skipif(
    not units.legacy_available(),
    reason="pre-2025 conversion tables need vietnam-provinces >= 2026 (Python >= 3.12)",
)


@pytest.fixture(scope="module", autouse=True)
def _index_once() -> None:
    units.warm_up()  # build the indexes once for the module


def names(found: list[units.Unit]) -> list[str]:
    return [u.display for u in found]


# ---------------------------------------------------------------- current communes


@pytest.mark.parametrize(
    "text",
    [
        "bac ruong",
        "Bắc Ruộng",
        "BẮC RUỘNG",
        "Xã Bắc Ruộng",
        "xa bac ruong",
        "Xã Bắc Ruộng, Lâm Đồng",
        "xa bac ruong tinh lam dong",
        "Bắc Ruộng - Lâm Đồng",
        "Bắc Ruộng, tỉnh Lâm Đồng, Việt Nam",
        "thôn 2, xã Bắc Ruộng, tỉnh Lâm Đồng",
        "thon tan lap xa bac ruong lam dong",
        "số 5 thôn 3 Bắc Ruộng Lâm Đồng",
        "bacruong",
        "phường Bắc Ruộng",  # wrong type word still finds the xã
    ],
)
def test_find_bac_ruong(text: str) -> None:
    found = units.find_commune(text)
    assert [u.code for u in found] == [BAC_RUONG]
    u = found[0]
    assert u.name == "Xã Bắc Ruộng"
    assert u.province_name == "Lâm Đồng"
    assert u.province_full == "Tỉnh Lâm Đồng"
    assert u.display == BAC_RUONG_DISPLAY


@pytest.mark.parametrize(
    "text, display",
    [
        ("phuong hoan kiem ha noi", "Phường Hoàn Kiếm, thành phố Hà Nội"),
        ("P. Hoàn Kiếm, TP Hà Nội", "Phường Hoàn Kiếm, thành phố Hà Nội"),
        ("phường Bến Thành, TP.HCM", "Phường Bến Thành, thành phố Hồ Chí Minh"),
        ("ben thanh sai gon", "Phường Bến Thành, thành phố Hồ Chí Minh"),
        ("phường Hà Giang 1", "Phường Hà Giang 1, tỉnh Tuyên Quang"),
        ("ha giang 1 tuyen quang", "Phường Hà Giang 1, tỉnh Tuyên Quang"),
        ("Phường 1 Bảo Lộc", "Phường 1 Bảo Lộc, tỉnh Lâm Đồng"),
        ("mdrak dak lak", "Xã M’Drắk, tỉnh Đắk Lắk"),
        ("đặc khu Phú Quốc", "Đặc khu Phú Quốc, tỉnh An Giang"),
        ("phuong lao cai", "Phường Lào Cai, tỉnh Lào Cai"),
        ("xã Tân Thành, Lâm Đồng", "Xã Tân Thành, tỉnh Lâm Đồng"),
    ],
)
def test_find_commune_various(text: str, display: str) -> None:
    found = units.find_commune(text)
    assert len(found) == 1, names(found)
    # the apostrophe in "M’Drắk" differs between library versions
    assert found[0].display.replace("'", "’") == display


def test_hanoi_unit_fields() -> None:
    (u,) = units.find_commune("Phường Hoàn Kiếm, Hà Nội")
    assert u.province_name == "Hà Nội"
    assert u.province_full == "Thành phố Hà Nội"
    assert units.unit(u.code) == u


@pytest.mark.parametrize(
    "name, province",
    [
        ("xã Tân Tiến", "Thanh Hóa"),
        ("tan tien", "Hưng Yên"),
        ("Xã Tân Thành", "Lâm Đồng"),
        ("binh minh", "Tây Ninh"),
    ],
)
def test_name_in_several_provinces_narrowed_by_the_province(name: str, province: str) -> None:
    several = units.find_commune(name)
    assert len({u.province_code for u in several}) >= 2, names(several)
    assert province in {u.province_name for u in several}
    narrowed = units.find_commune(f"{name}, {province}")
    assert len(narrowed) == 1, names(narrowed)
    assert narrowed[0].province_name == province
    assert narrowed[0] in several


def test_named_province_restricts() -> None:
    assert units.find_commune("Bắc Ruộng, Hà Nội") == []
    assert units.find_commune("hoan kiem, lam dong") == []


@pytest.mark.parametrize("text", ["Lâm Đồng", "tỉnh Lâm Đồng", "lam dong", "TP Hà Nội", "Lào Cai"])
def test_province_only(text: str) -> None:
    assert units.find_commune(text) == []
    out = validate(COMMUNE, text, {}, TODAY)
    assert isinstance(out, Invalid) and out.code == "commune_need_commune"
    assert out.params["province"] in units.province_names()


def test_hamlet_detail_is_not_the_commune() -> None:
    # "Tân Lập" is a commune name elsewhere; here it is the hamlet ("thôn")
    found = units.find_commune("thôn Tân Lập, xã Bắc Ruộng, Lâm Đồng")
    assert [u.code for u in found] == [BAC_RUONG]


def test_unit_and_province_names() -> None:
    u = units.unit(BAC_RUONG)
    assert u.display == BAC_RUONG_DISPLAY
    with pytest.raises(KeyError):
        units.unit(999999)
    provinces = units.province_names()
    assert len(provinces) == 34
    assert {"Hà Nội", "Lâm Đồng", "Hồ Chí Minh", "Huế"} <= set(provinces)
    assert not any(p.startswith(("Tỉnh", "Thành phố")) for p in provinces)
    assert "Bình Thuận" not in provinces


# ---------------------------------------------------------------- the commune answer


@pytest.mark.parametrize(
    "text", ["bac ruong", "Bắc Ruộng, Lâm Đồng", "Xã Bắc Ruộng, tỉnh Lâm Đồng"]
)
def test_validate_current_commune(text: str) -> None:
    out = validate(COMMUNE, text, {}, TODAY)
    assert out == Valid(BAC_RUONG, BAC_RUONG_DISPLAY)


def test_validate_several_communes_asks_which() -> None:
    out = validate(COMMUNE, "xã Tân Tiến", {}, TODAY)
    assert isinstance(out, Ambiguous)
    assert 2 <= len(out.options) <= MAX_OPTIONS
    assert all(isinstance(o.value, int) for o in out.options)
    assert all(o.display.startswith("Xã Tân Tiến, ") for o in out.options)
    out = validate(COMMUNE, "xã Tân Tiến, Thanh Hóa", {}, TODAY)
    assert isinstance(out, Valid) and out.display == "Xã Tân Tiến, tỉnh Thanh Hóa"


@pytest.mark.parametrize("text", ["xyz", "nhà tôi ở gần chợ", "Bắc Ruộng, Hà Nội"])
def test_validate_unknown(text: str) -> None:
    out = validate(COMMUNE, text, {}, TODAY)
    assert isinstance(out, Invalid) and out.code == "commune_unknown"
    assert out.code in error_codes()


def test_validate_old_province_with_a_current_commune_name() -> None:
    # Bình Thuận no longer exists: an old address, confirmed before it is taken
    out = validate(COMMUNE, "Bắc Ruộng, Bình Thuận", {}, TODAY)
    assert isinstance(out, Confirm)
    assert out.code == "commune_converted"
    assert out.candidate == Valid(BAC_RUONG, BAC_RUONG_DISPLAY)
    assert out.params["old"] == "Bắc Ruộng, Bình Thuận"
    assert out.params["new"] == BAC_RUONG_DISPLAY


# ---------------------------------------------------------------- old addresses

OLD_MANG_TO = "Xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận"


@needs_legacy
@pytest.mark.parametrize(
    "text",
    [
        "xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận",
        "xa mang to tanh linh binh thuan",
        "Măng Tố, Tánh Linh",
        "thôn 1, xã Măng Tố, huyện Tánh Linh",
        "mang to binh thuan",
        "xã Măng Tố, Tánh Linh, Lâm Đồng",
    ],
)
def test_convert_mang_to(text: str) -> None:
    converted = units.convert_legacy(text)
    assert [(u.code, old) for u, old in converted] == [(BAC_RUONG, OLD_MANG_TO)]


@needs_legacy
@pytest.mark.parametrize(
    "text, new",
    [
        # the other former Tánh Linh communes (domain §6.1)
        ("xã Đức Phú, huyện Tánh Linh, Bình Thuận", "Xã Nghị Đức, tỉnh Lâm Đồng"),
        ("xa huy khiem tanh linh binh thuan", "Xã Đồng Kho, tỉnh Lâm Đồng"),
        ("xã La Ngâu, Tánh Linh", "Xã Đồng Kho, tỉnh Lâm Đồng"),
        ("thị trấn Lạc Tánh, huyện Tánh Linh, tỉnh Bình Thuận", "Xã Tánh Linh, tỉnh Lâm Đồng"),
        ("xã Gia An, huyện Tánh Linh", "Xã Tánh Linh, tỉnh Lâm Đồng"),
        ("xã Gia Huynh, Tánh Linh, Bình Thuận", "Xã Suối Kiết, tỉnh Lâm Đồng"),
        ("xã Bắc Ruộng, huyện Tánh Linh, tỉnh Bình Thuận", BAC_RUONG_DISPLAY),
    ],
)
def test_convert_tanh_linh(text: str, new: str) -> None:
    converted = units.convert_legacy(text)
    assert [u.display for u, _ in converted] == [new]


@needs_legacy
def test_convert_uses_the_district_to_choose() -> None:
    # Hà Nội had a xã Tân Minh in two districts, now in two different communes
    both = units.convert_legacy("xã Tân Minh, Hà Nội")
    assert {u.display for u, _ in both} == {
        "Xã Sóc Sơn, thành phố Hà Nội",
        "Xã Thượng Phúc, thành phố Hà Nội",
    }
    soc_son = units.convert_legacy("xã Tân Minh, huyện Sóc Sơn, Hà Nội")
    assert [(u.display, old) for u, old in soc_son] == [
        ("Xã Sóc Sơn, thành phố Hà Nội", "Xã Tân Minh, huyện Sóc Sơn, thành phố Hà Nội")
    ]
    thuong_tin = units.convert_legacy("xa tan minh thuong tin ha noi")
    assert [u.display for u, _ in thuong_tin] == ["Xã Thượng Phúc, thành phố Hà Nội"]


@needs_legacy
def test_validate_old_address_is_confirmed() -> None:
    out = validate(COMMUNE, "xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận", {}, TODAY)
    assert isinstance(out, Confirm)
    assert out.code == "commune_converted"
    assert out.candidate == Valid(BAC_RUONG, BAC_RUONG_DISPLAY)
    assert out.params == {
        "old": "xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận",
        "new": BAC_RUONG_DISPLAY,
        "old_unit": OLD_MANG_TO,
    }
    # the current name, typed the new way, is taken directly
    assert validate(COMMUNE, "Bắc Ruộng, Lâm Đồng", {}, TODAY) == Valid(
        BAC_RUONG, BAC_RUONG_DISPLAY
    )
    # an old name alone (no district, no province) is converted too
    out = validate(COMMUNE, "mang to", {}, TODAY)
    assert isinstance(out, Confirm) and out.candidate.value == BAC_RUONG


@needs_legacy
def test_validate_old_unit_split_in_several_asks_which() -> None:
    # Phường Quang Trung (quận Đống Đa) went partly to two new wards
    out = validate(COMMUNE, "phường Quang Trung, quận Đống Đa, Hà Nội", {}, TODAY)
    assert isinstance(out, Ambiguous)
    assert {o.display for o in out.options} == {
        "Phường Kim Liên, thành phố Hà Nội",
        "Phường Đống Đa, thành phố Hà Nội",
    }


def test_without_legacy_tables() -> None:
    if units.legacy_available():
        pytest.skip("only without the legacy tables (vietnam-provinces < 2026, Python 3.11)")
    assert units.convert_legacy(OLD_MANG_TO) == []
    out = validate(COMMUNE, OLD_MANG_TO, {}, TODAY)
    assert out == Invalid("commune_old_unsupported")
    assert validate(COMMUNE, "xa mang to tanh linh binh thuan", {}, TODAY) == Invalid(
        "commune_old_unsupported"
    )


def test_legacy_tables_are_not_loaded_at_import() -> None:
    code = (
        "import sys; import procedures.validators, procedures.units as u; "
        "u.find_commune('bac ruong'); "
        "print('vietnam_provinces.legacy' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


# ---------------------------------------------------------------- the disk cache

ROOT = Path(__file__).resolve().parents[1]
CACHE_TEXTS = [
    "thôn 2, xã Bắc Ruộng, tỉnh Lâm Đồng",
    "Phường Hoàn Kiếm, Hà Nội",
    "xã Tân Tiến",
    "Bắc Ruộng, Bình Thuận",
    "xã Măng Tố, huyện Tánh Linh, tỉnh Bình Thuận",
    "phường Quang Trung, quận Đống Đa, Hà Nội",
    "Lâm Đồng",
]
# Answers the texts, then says whether the library was imported, and whether the index in
# memory (from the cache or not) equals one built from the library now.
CACHE_SCRIPT = """
import json, sys
from procedures import units

answers = [repr(units.lookup(t)) + repr(units.convert_legacy(t)) for t in sys.argv[1:]]
library = "vietnam_provinces" in sys.modules
legacy = units._build_legacy() if units.legacy_available() else None
print(json.dumps({
    "answers": answers,
    "library": library,
    "legacy": units.legacy_available(),
    "same_current": units._current == units._build_current(),
    "same_legacy": units._legacy == legacy,
    "interned": all(sys.intern(k) is k for k in units._current.kinds.values()),
}))
"""


def expected_answers() -> list[str]:
    return [repr(units.lookup(t)) + repr(units.convert_legacy(t)) for t in CACHE_TEXTS]


def run_units(cache_dir: Path) -> tuple[dict, str]:
    """Run CACHE_SCRIPT in a fresh process with this cache directory: (its report, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", CACHE_SCRIPT, *CACHE_TEXTS],
        cwd=ROOT,
        env=os.environ | {"MOTCUA_CACHE_DIR": str(cache_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.iterdir())


def test_cache_is_written_then_used_without_the_library(tmp_path: Path) -> None:
    cache = tmp_path / "a" / "cache"  # created on first use
    first, err = run_units(cache)
    assert first["library"] is True  # built from the library...
    assert err == ""
    files = cache_files(cache)  # ...and written: current, and legacy when available
    assert [f.name.split("-")[-1] for f in files] == (
        ["current.marshal", "legacy.marshal"] if units.legacy_available() else ["current.marshal"]
    )
    assert len({f.name.split("-")[1] for f in files}) == 1  # one key for both

    second, err = run_units(cache)
    assert err == ""
    assert second["library"] is False  # the cache answered: vietnam_provinces never imported
    assert second["legacy"] == units.legacy_available()
    assert second["answers"] == first["answers"] == expected_answers()
    # what was loaded equals what the library builds, field by field
    assert second["same_current"] and second["same_legacy"]
    assert second["interned"]
    assert cache_files(cache) == files


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign"])
def test_damaged_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    run_units(tmp_path)
    files = cache_files(tmp_path)
    for f in files:
        blob = f.read_bytes()
        if damage == "truncated":
            f.write_bytes(blob[: len(blob) // 2])
        elif damage == "garbage":
            f.write_bytes(b"\x00not a marshal file\xff" * 100)
        elif damage == "empty":
            f.write_bytes(b"")
        else:  # valid marshal data, not an index
            key, _ = marshal.loads(blob)
            f.write_bytes(marshal.dumps((key, {"units": [1, 2]})))

    rebuilt, err = run_units(tmp_path)
    assert rebuilt["library"] is True
    assert rebuilt["answers"] == expected_answers()
    assert rebuilt["same_current"] and rebuilt["same_legacy"]
    assert err.count("cache damaged") == len(files)
    assert str(tmp_path) not in err  # no path (a user name) in the log

    # the rebuilt files were written back and load again
    again, err = run_units(tmp_path)
    assert (again["library"], err) == (False, "")
    assert again["answers"] == expected_answers()


def test_unwritable_cache_dir_still_answers(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    for _ in range(2):
        report, err = run_units(blocker / "cache")
        assert report["library"] is True
        assert report["answers"] == expected_answers()
        assert "cache not written" in err
        assert str(tmp_path) not in err
    assert blocker.read_text() == "a file where the cache directory should be"


def test_processes_racing_on_a_cold_cache(tmp_path: Path) -> None:
    env = os.environ | {"MOTCUA_CACHE_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CACHE_SCRIPT, *CACHE_TEXTS],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out)["answers"] == expected_answers()
    # no temp file left behind; the files that won the race load
    assert all(f.name.startswith("units-") for f in cache_files(tmp_path))
    report, err = run_units(tmp_path)
    assert (report["library"], err) == (False, "")


def test_cache_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MOTCUA_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert units._cache_dir() == tmp_path / "home" / ".cache" / "motcua"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert units._cache_dir() == tmp_path / "home" / ".cache" / "motcua"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert units._cache_dir() == tmp_path / "xdg" / "motcua"
    monkeypatch.setenv("MOTCUA_CACHE_DIR", str(tmp_path / "own"))
    assert units._cache_dir() == tmp_path / "own"
