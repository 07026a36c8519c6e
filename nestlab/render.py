"""Render a Plan into the artifacts ``up`` will use. Pure: nothing is defined or started,
and no secret is read (a Windows L1's password is shown by where it is kept).

This is the only module that knows where the templates live (the
``nestlab.templates`` package, installed from the repo's ``templates/``).
"""

from __future__ import annotations

import base64
import contextlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

import jinja2

from nestlab.errors import InputError
from nestlab.files import write_atomic
from nestlab.plan import METADATA_NS, GuestPlan, HostPlan, NetworkPlan, Plan

Artifacts = Mapping[PurePosixPath, str]
LOCALE = "en-US"
"""Language, locale and keyboard of Windows L1s (their answer files)."""
WINDOWS_PROVISION_SCRIPTS = (
    "hyperv-state", "preflight", "install-hyperv", "restart", "guest-network",
    "guest-folder", "file-hash", "guest-vm", "guest-proof",
)
"""The scripts ``up`` runs in a Windows L1 over WinRM (provision/windows.py), which
``render`` writes for reading; a test replays provisioning against the FAKE L1 and
checks that these are exactly the scripts it runs."""


def _environment() -> jinja2.Environment:
    root = resources.files("nestlab.templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        # Every value that lands in XML is escaped; other templates choose their own quoting.
        autoescape=jinja2.select_autoescape(enabled_extensions=("xml.j2",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["metadata_ns"] = METADATA_NS
    return env


_ENV = _environment()


def template_source(name: str) -> str:
    """A template's text (what an image key hashes)."""
    return _ENV.loader.get_source(_ENV, name)[0]  # type: ignore[union-attr]


def render_template(name: str, **values: object) -> str:
    return _ENV.get_template(name).render(**values)


def powershell_script(name: str) -> str:
    """A PowerShell script shipped in templates/windows/, as text (values go in as
    parameters when it runs, never into its text)."""
    return (resources.files("nestlab.templates") / "windows" / f"{name}.ps1").read_text()


def powershell_script_names() -> list[str]:
    folder = resources.files("nestlab.templates") / "windows"
    return sorted(p.name.removesuffix(".ps1") for p in folder.iterdir()
                  if p.name.endswith(".ps1"))


def render_network_xml(plan: Plan, net: NetworkPlan) -> str:
    """libvirt network XML for one L1 network on L0."""
    return render_template("network.xml.j2", lab=plan.lab, net=net)


VNC_PASSWORD_PLACEHOLDER = "PLACEHOLDER:made-at-up,in-keys/NAME.vnc"  # noqa: S105
"""Where a Windows L1's VNC password goes in its domain XML, in what ``render`` writes."""


def render_domain_xml(plan: Plan, host: HostPlan,
                      vnc_password: str = VNC_PASSWORD_PLACEHOLDER) -> str:
    """libvirt domain XML for one L1, by OS (and, through the plan, accel and vendor).
    Only ``up`` passes the real VNC password: the XML goes to libvirt, never to a file."""
    template = f"domain-{host.family}.xml.j2"
    return render_template(template, lab=plan.lab, host=host, vnc_password=vnc_password)


def render_guest_network_xml(plan: Plan, host: HostPlan) -> str:
    """libvirt network XML for the L2 network inside a Linux L1."""
    return render_template("guest-network.xml.j2", lab=plan.lab, gnet=host.guest_network)


PUBLIC_KEY_PLACEHOLDER = ("PLACEHOLDER:the-lab-public-key,made-at-the-first-up,"
                          "in-keys/id_ed25519.pub")
"""Where an L2's kernel command line takes the lab's key (base64), before the key exists:
one word (the command line splits on spaces), plain XML text, and plainly not a key."""


def render_guest_domain_xml(plan: Plan, host: HostPlan, guest: GuestPlan) -> str:
    """libvirt domain XML for an L2 inside a Linux L1. The prime reads the lab's public key
    from its kernel command line; a plan made before the lab has one (``nestlab render``
    before the first ``up``) shows ``PUBLIC_KEY_PLACEHOLDER`` where it will go."""
    authkey = (base64.b64encode(plan.public_key.encode()).decode() if plan.public_key
               else PUBLIC_KEY_PLACEHOLDER)
    return render_template("guest-domain.xml.j2", lab=plan.lab, host=host, guest=guest,
                           authkey=authkey)


@dataclass(frozen=True)
class AnswerPassword:
    """What the two password fields of an L1's answer file hold: the encoded password
    (answerfile.py, on the medium ``up`` writes), or for ``render`` a placeholder."""

    administrator: str
    autologon: str


def password_placeholder(host: str) -> AnswerPassword:
    """Where the password of a Windows L1 will be (answerfile.l1_password), never what."""
    shown = f"<password of {host}: generated at the first up, kept in keys/{host}.password>"
    return AnswerPassword(shown, shown)


def render_l1_answer_xml(computer_name: str, password: AnswerPassword) -> str:
    """The first-boot answer file of one Windows L1 (autounattend.xml on its medium)."""
    return render_template(
        "windows/unattend.xml.j2", locale=LOCALE, computer_name=computer_name,
        admin_password_value=password.administrator,
        autologon_password_value=password.autologon)


def l1_answer_medium(computer_name: str, password: AnswerPassword) -> dict[str, str]:
    """The files on a Windows L1's answer medium: its answer file, and winrm.ps1, which
    the answer file's first logon runs."""
    return {"autounattend.xml": render_l1_answer_xml(computer_name, password),
            "winrm.ps1": powershell_script("winrm")}


def with_uuid(domain_xml: str, uuid: str) -> str:
    """A domain's XML with the UUID of its existing definition: libvirt refuses to redefine
    a domain under the same name with another (or a new, generated) UUID."""
    name_end = domain_xml.index("</name>") + len("</name>")
    return f"{domain_xml[:name_end]}\n  <uuid>{uuid}</uuid>{domain_xml[name_end:]}"


def render_artifacts(plan: Plan) -> dict[PurePosixPath, str]:
    """Everything ``up`` defines or sends, keyed by a relative path that says what it is:
    libvirt XML on L0 and in Linux L1s; for a Windows L1 its answer medium (the password
    as a placeholder) and the PowerShell scripts provisioning runs in it."""
    out: dict[PurePosixPath, str] = {}
    for net in plan.networks:
        out[PurePosixPath("l0/networks", f"{net.name}.xml")] = render_network_xml(plan, net)
    for host in plan.hosts:
        out[PurePosixPath("l0/domains", f"{host.domain_name}.xml")] = render_domain_xml(
            plan, host
        )
        out.update(_L1_ARTIFACTS[host.family](plan, host))
    return out


def _windows_l1_artifacts(plan: Plan, host: HostPlan) -> dict[PurePosixPath, str]:
    """Hyper-V's switch and VMs are made by these scripts, not by libvirt XML."""
    inside = PurePosixPath("l1", host.name)
    out = {inside / "answer-medium" / name: text for name, text in
           l1_answer_medium(host.name, password_placeholder(host.name)).items()}
    for script in WINDOWS_PROVISION_SCRIPTS:
        out[inside / "windows" / f"{script}.ps1"] = powershell_script(script)
    return out


def _linux_l1_artifacts(plan: Plan, host: HostPlan) -> dict[PurePosixPath, str]:
    """The L2 network and L2 domains nestlab defines in the L1's own libvirt."""
    inside = PurePosixPath("l1", host.name)
    out = {inside / "networks" / f"{host.guest_network.name}.xml":
           render_guest_network_xml(plan, host)}
    for guest in host.guests:
        out[inside / "domains" / f"{guest.domain_name}.xml"] = render_guest_domain_xml(
            plan, host, guest)
    return out


_L1_ARTIFACTS = {"linux": _linux_l1_artifacts, "windows": _windows_l1_artifacts}


class OutputNotWritable(InputError):
    """The folder given for rendered files cannot take them."""


def write_artifacts(artifacts: Artifacts, out_dir: Path) -> list[Path]:
    """Write rendered artifacts under ``out_dir``; returns the files written.

    nestlab runs as root, and ``out_dir`` may be a folder others can write to:
    each file goes through ``write_atomic`` (a fresh temporary name, never a
    predictable one a planted symlink could redirect, then a rename that
    replaces a symlink at the target instead of following it), and a folder
    below ``out_dir`` that is a symlink or a file is refused, not followed.
    """
    written = []
    current = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for relative, text in sorted(artifacts.items()):
            current = _real_folder(out_dir, relative.parent) / relative.name
            write_atomic(current, text, mode=0o644)
            written.append(current)
    except FileExistsError:
        raise OutputNotWritable(f"{current}: exists and is not a folder; the rendered files "
                                "need a folder there") from None
    except OSError as exc:
        raise OutputNotWritable(f"{current}: cannot write the rendered files: "
                                f"{exc.strerror or exc}") from None
    return written


def _real_folder(out_dir: Path, relative: PurePosixPath) -> Path:
    """``out_dir / relative``, each folder made when missing and refused when it is not a
    real folder (lstat: a symlink to a folder counts as not one)."""
    folder = out_dir
    for part in relative.parts:
        folder = folder / part
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o755)
        if not stat.S_ISDIR(folder.lstat().st_mode):
            raise OutputNotWritable(f"{folder}: is a symbolic link or a file, not a folder; "
                                    "nestlab does not write through it")
    return folder
