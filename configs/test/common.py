"""Evaluation configs mirroring OpenSphere's ``config/test``: data paths are config fields.

    python -m jsphere.main --mode=eval --config=configs/test/lfw.py --workdir=runs/my_run
    python -m jsphere.main --mode=eval --config=configs/test/combined.py --workdir=... --config.eval.last_k=5
    python -m jsphere.main --mode=eval --config=configs/test/lfw.py --workdir=... \
        --config.eval.sets[0].path=/data/lfw/pairs.txt --config.eval.sets[0].data_dir=/data/lfw/aligned
"""

import ml_collections

# The FPRs OpenSphere v2's test configs (config/test/*.yml) report TPR at; without ``fprs`` a set reports OpenSphere
# v1's (jsphere.eval.verification.OPENSPHERE_V1_FPRS, which ends at 5e-2).
OPENSPHERE_V2_FPRS = (1e-4, 5e-4, 1e-3, 5e-3, 1e-2)
# Every pair-file set has ``format``: "auto" detects the form from the file (OpenSphere list, LFW pairs.txt,
# CALFW/CPLFW two-line file, AgeDB .mat); name one (opensphere | lfw | xlfw | agedb) to insist on it.
PAIR_SETS = {
    "lfw": dict(name="LFW", type="pairs", format="auto", path="data/val/lfw_ann.txt", data_dir="data/val"),
    "agedb": dict(name="AgeDB-30", type="pairs", format="auto", path="data/val/agedb_30_ann.txt",
                  data_dir="data/val"),
    "calfw": dict(name="CA-LFW", type="pairs", format="auto", path="data/val/calfw_ann.txt", data_dir="data/val"),
    "cplfw": dict(name="CP-LFW", type="pairs", format="auto", path="data/val/cplfw_ann.txt", data_dir="data/val"),
    "combined": dict(name="Combined", type="pairs", format="auto", path="data/val/combined_ann.txt",
                     data_dir="data/val"),
}
# The same sets in the forms their authors (or insightface) publish them: ``configs/test/<set>.py:<form>``.
# The images must be aligned 112x112 crops stored under the published file names.
PUBLISHED_SETS = {
    "lfw": {"pairs": dict(name="LFW", type="pairs", format="auto", path="data/val/lfw/pairs.txt",
                          data_dir="data/val/lfw"),
            "bin": dict(name="LFW", type="bin", path="data/val/lfw.bin")},
    "calfw": {"pairs": dict(name="CA-LFW", type="pairs", format="auto", path="data/val/calfw/pairs_CALFW.txt",
                            data_dir="data/val/calfw/images"),
              "bin": dict(name="CA-LFW", type="bin", path="data/val/calfw.bin")},
    "cplfw": {"pairs": dict(name="CP-LFW", type="pairs", format="auto", path="data/val/cplfw/pairs_CPLFW.txt",
                            data_dir="data/val/cplfw/images"),
              "bin": dict(name="CP-LFW", type="bin", path="data/val/cplfw.bin")},
    "agedb": {"pairs": dict(name="AgeDB-30", type="pairs", format="auto",
                            path="data/val/agedb/04_FINAL_protocol_30_years.mat",
                            data_dir="data/val/agedb/03_Protocol_Images"),
              "bin": dict(name="AgeDB-30", type="bin", path="data/val/agedb_30.bin")},
}
IJB_SETS = {
    "ijbb": dict(name="IJB-B", type="ijb", ijb="ijbb", path="data/test/IJB-B", pooling="opensphere_v1"),
    "ijbc": dict(name="IJB-C", type="ijb", ijb="ijbc", path="data/test/IJB-C", pooling="opensphere_v1"),
}


def eval_config(*sets: dict, batch_size: int = 256) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.eval = ml_collections.ConfigDict()
    c.eval.sets = [dict(s) for s in sets]
    c.eval.last_k = 1
    c.eval.batch_size = batch_size
    c.eval.flip = "sum"
    c.eval.fprs = OPENSPHERE_V2_FPRS
    return c


def pair_set_config(key: str, form: str | None) -> ml_collections.ConfigDict:
    """The eval config of set ``key`` in ``form``: None / 'opensphere' (OpenSphere's pair list) or a published
    form of ``PUBLISHED_SETS`` ('pairs': the authors' pair file, 'bin': insightface's .bin)."""
    forms = {"opensphere": PAIR_SETS[key], **PUBLISHED_SETS.get(key, {})}
    form = form or "opensphere"
    if form not in forms:
        raise ValueError(f"configs/test/{key}.py:{form}: the forms of this set are {', '.join(forms)}")
    return eval_config(forms[form])
