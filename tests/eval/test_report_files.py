"""A set's report files are named after its ``name`` field, as the README says; a name that cannot be one file
name inside ``WORKDIR/eval``, or that two sets share, is refused before anything is evaluated."""

from pathlib import Path

import pytest

from configs.test import lfw
from configs.test.common import eval_config
from jsphere import config_check
from jsphere.eval import report

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_names_the_report_files_the_way_evaluate_writes_them(tmp_path):
    name = lfw.get_config().eval.sets[0]["name"]
    report.write_report(tmp_path, name, {"step 1": {"ACC": 99.0}}, "table")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.txt"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`WORKDIR/eval/{name}.txt` for `configs/test/lfw.py`" in readme
    assert "`WORKDIR/eval/<name>.{txt,json}` and `<name>_roc.png`" in readme


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_a_set_name_that_is_not_a_plain_file_name_is_refused(tmp_path, name):
    config = eval_config(dict(name=name, type="pairs", path="pairs.txt"))
    with pytest.raises(ValueError, match=r"config\.eval\.sets\[0\]\.name: eval set name .* cannot name its report"):
        config_check.check_eval_values(config)
    with pytest.raises(ValueError, match="cannot name its report files"):
        report.write_report(tmp_path / "eval", name, {}, "")
    assert not list(tmp_path.rglob("*.json"))


def test_two_sets_with_one_name_are_refused():
    config = eval_config(dict(name="LFW", type="pairs", path="a.txt"), dict(name="LFW", type="bin", path="b.bin"))
    with pytest.raises(ValueError, match=r"config\.eval\.sets\[1\]\.name='LFW' is also the name of .*sets\[0\]"):
        config_check.check_eval_values(config)
