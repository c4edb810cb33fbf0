"""`make validate` runs offline through a provider mirror, and says what to do when it cannot run at all."""

from pathlib import Path

import pytest

from tools import terraform


def test_without_mirror_or_registry_the_error_names_both_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terraform, "find_mirror", lambda: None)
    monkeypatch.setattr(terraform, "registry_reachable", lambda timeout=3.0: False)
    with pytest.raises(terraform.TerraformSetupError) as raised:
        terraform.environment()
    message = str(raised.value)
    assert "TF_PROVIDER_MIRROR" in message and "registry.terraform.io" in message


def test_a_mirror_is_found_from_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    platform = tmp_path / "registry.terraform.io" / "hashicorp" / "aws" / "5.100.0" / "linux_amd64"
    platform.mkdir(parents=True)
    (platform / "terraform-provider-aws_v5.100.0_x5").write_bytes(b"")
    monkeypatch.setenv("TF_PROVIDER_MIRROR", str(tmp_path))
    monkeypatch.setattr(terraform, "KNOWN_MIRRORS", ())
    assert terraform.find_mirror() == tmp_path


def test_the_cli_config_points_terraform_at_the_mirror_only_for_registry_providers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(terraform, "find_mirror", lambda: tmp_path)
    monkeypatch.setattr(terraform, "CLI_CONFIG", tmp_path / "terraform.rc")
    env = terraform.environment()
    config = Path(env["TF_CLI_CONFIG_FILE"]).read_text()
    assert f'path    = "{tmp_path}"' in config
    assert "TF_PLUGIN_CACHE_DIR" not in env


def test_validate_without_synthesized_stacks_says_to_synth_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(terraform, "STACKS", tmp_path / "stacks")
    with pytest.raises(terraform.TerraformSetupError, match="make synth"):
        terraform.stack_dirs()
