from conftest import ROOT, run_digits


def test_help_lists_every_subcommand():
    result = run_digits("--help")
    assert result.returncode == 0
    for name in ("train", "export", "predict", "run", "draw", "bench"):
        assert name in result.stdout


def test_unknown_subcommand_is_an_error():
    result = run_digits("fly")
    assert result.returncode == 2 and "unknown command 'fly'" in result.stderr


def test_subcommand_help_shows_defaults():
    result = run_digits("predict", "--help")
    assert result.returncode == 0 and "--model" in result.stdout and "default" in result.stdout


def test_train_rejects_bad_options(tmp_path):
    result = run_digits("train", "--epochs", "0")
    assert result.returncode == 2 and "--epochs" in result.stderr
    result = run_digits("train", "--output", str(tmp_path / "model.h5"))
    assert result.returncode == 2 and "must end in .keras" in result.stderr
    result = run_digits("train", "--low-res-share", "1.5")
    assert result.returncode == 2 and "--low-res-share" in result.stderr and len(result.stderr.splitlines()) == 1
    for option in ("--fill-box-share", "--scene-share", "--reject-budget", "--teacher-weight"):
        result = run_digits("train", option, "-0.1")
        assert result.returncode == 2 and option in result.stderr and len(result.stderr.splitlines()) == 1
    result = run_digits("train", "--teacher", str(tmp_path / "missing.keras"))
    assert result.returncode == 2 and "missing.keras: no such file" in result.stderr
    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("not a model")
    result = run_digits("train", "--teacher", str(not_a_model), "--subset", "100", "--epochs", "1",
                        "--output", str(tmp_path / "student.keras"))
    assert result.returncode == 2 and "notes.keras is not a loadable .keras model" in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("digits")] == result.stderr.splitlines()[-1:]


def test_export_rejects_unknown_format():
    result = run_digits("export", "--formats", "coreml")
    assert result.returncode == 2 and "coreml" in result.stderr and "tflite_int8" in result.stderr


def test_export_missing_model_is_one_line(tmp_path):
    result = run_digits("export", str(tmp_path / "none.keras"))
    assert result.returncode == 1 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_training_tools_on_an_edge_install_say_what_to_install():
    """No TensorFlow/Keras (a Pi's edge install): train and export name the extra, without a traceback."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys\n"
            "for name in ('keras', 'tensorflow'): sys.modules[name] = None  # as if not installed\n"
            "from edge_app.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    for command in (["export", "models/cnn.keras"], ["train", "--epochs", "1"]):
        result = subprocess.run([sys.executable, "-c", code, *command], cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        assert "pip install 'digits-edge[train]' (from a clone: pip install -e '.[train]')" in result.stderr


def test_version_is_the_package_version():
    from importlib.metadata import version

    result = run_digits("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"digits {version('digits-edge')}"


def test_options_are_kebab_case_and_the_old_spellings_still_work(tmp_path):
    for command in ("predict", "run", "bench", "export", "train"):
        shown = run_digits(command, "--help").stdout
        assert "--min_confidence" not in shown and "--max_frames" not in shown and "--batch_size" not in shown
    assert "--max-frames" in run_digits("run", "--help").stdout
    image = str(ROOT / "tests" / "data" / "handdrawn" / "4.png")
    for spelling in ("--min-confidence", "--min_confidence"):
        result = run_digits("predict", image, spelling, "0.9", "--format", "jsonl")
        assert result.returncode == 0 and '"digit": 4' in result.stdout, result.stderr


def test_a_shortened_option_still_matches_one_option():
    image = str(ROOT / "tests" / "data" / "handdrawn" / "4.png")
    result = run_digits("run", "--source", image, "--headless", "--vote", "3")
    assert result.returncode == 0 and result.stdout.strip().endswith(": 4"), result.stderr
