"""Which labs a command acts on (-f/--lab and --seat), and the seats' worker pool."""

from __future__ import annotations

import ipaddress
import signal
import threading
from functools import partial
from pathlib import Path

import pytest

from nestlab.build import images
from nestlab.commands.seats import build_images, network_cidrs, run_seats
from nestlab.commands.selection import labs_of_file, one_lab_dir, seats_here, select_labs
from nestlab.errors import InputError, LabFileError
from nestlab.lab.labfile import parse_lab
from nestlab.progress import ProgressLines
from nestlab.state.record import claim_lab_dir
from tests.unit.test_seats import COURSE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "home"


def lab_file(tmp_path: Path, seats: int | None) -> Path:
    path = tmp_path / "course.yaml"
    path.write_text(COURSE + (f"seats: {seats}\n" if seats else ""))
    return path


def names(folders: list[Path]) -> list[str]:
    return [f.name for f in folders]


def test_a_lab_without_seats_is_its_own_folder(tmp_path: Path, root: Path) -> None:
    selection = select_labs(lab_file(tmp_path, None), None, None, root)
    assert (names(selection.folders), selection.seated) == (["course"], False)
    assert one_lab_dir(lab_file(tmp_path, None), None, None, root).name == "course"


def test_a_lab_with_seats_is_every_seat_and_seat_picks_one(tmp_path: Path, root: Path) -> None:
    path = lab_file(tmp_path, 3)
    selection = select_labs(path, None, None, root)
    assert names(selection.folders) == ["course-s01", "course-s02", "course-s03"]
    assert selection.seated and selection.lab == "course"
    picked = select_labs(path, None, 2, root)
    assert (names(picked.folders), picked.seated) == (["course-s02"], False)
    with pytest.raises(InputError, match=r"lab course has 3 seats \(course-s01, course-s02, "
                                         r"course-s03\): this command acts on one"):
        one_lab_dir(path, None, None, root)
    with pytest.raises(InputError, match=r"lab course has 3 seats; there is no seat 4"):
        select_labs(path, None, 4, root)


def test_a_lab_of_one_seat_says_so_in_the_singular(tmp_path: Path, root: Path) -> None:
    path = lab_file(tmp_path, 1)
    with pytest.raises(InputError, match=r"^lab course has 1 seat; there is no seat 2$"):
        select_labs(path, None, 2, root)
    with pytest.raises(InputError, match=r"^lab course has 1 seat; there is no seat 2$"):
        labs_of_file(parse_lab(path.read_text()), 2, str(path))


def test_seats_brought_up_here_are_found_by_name(tmp_path: Path, root: Path) -> None:
    for name in ("course-s01", "course-s04", "coursework-s01"):
        claim_lab_dir(root / "labs" / name, name)
    (root / "labs" / "course-s02").mkdir()  # not marked as a lab: not a seat
    assert seats_here("course", root) == [1, 4]
    assert names(select_labs(tmp_path / "none.yaml", "course", None, root).folders) == [
        "course-s01", "course-s04"]
    assert names(select_labs(lab_file(tmp_path, 2), None, None, root).folders) == [
        "course-s01", "course-s02", "course-s04"]  # the file's, and those up here
    assert names(select_labs(lab_file(tmp_path, None), None, None, root).folders) == [
        "course-s01", "course-s04"]  # up with --seats N: the file has no seats
    assert names(select_labs(tmp_path / "none.yaml", "course", 7, root).folders) == [
        "course-s07"]
    claim_lab_dir(root / "labs" / "course", "course")
    assert names(select_labs(lab_file(tmp_path, None), None, None, root).folders) == [
        "course"]  # the lab itself comes first: a lab without seats stays as it was


def test_a_long_name_has_no_seats(tmp_path: Path, root: Path) -> None:
    with pytest.raises(InputError, match=r"cannot have seats: its name has more than 16"):
        select_labs(tmp_path / "none.yaml", "abcdefghijklmnopq", 1, root)


def test_plan_and_render_act_on_one_seat_or_all(tmp_path: Path) -> None:
    lab = parse_lab(COURSE + "seats: 3\n")
    assert [x.name for x in labs_of_file(lab, None, "f")] == [
        "course-s01", "course-s02", "course-s03"]
    (second,) = labs_of_file(lab, 2, "f")
    assert (second.name, str(second.networks[0].cidr)) == ("course-s02", "10.77.1.0/24")
    with pytest.raises(InputError, match=r"no seat 4"):
        labs_of_file(lab, 4, "f")
    plain = parse_lab(COURSE)
    assert labs_of_file(plain, None, "f") == [plain]
    assert labs_of_file(plain, 2, "f")[0].name == "course-s02"
    with pytest.raises(LabFileError, match=r"overlaps"):
        labs_of_file(parse_lab(COURSE.replace("10.90.0.0/28", "10.77.1.0/24")), 2, "f")


def test_run_seats_keeps_the_order_and_the_budget() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def job(number: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        with lock:
            running -= 1
        return number

    assert run_seats([partial(job, n) for n in range(7)], 2) == list(range(7))
    assert most <= 2
    order: list[int] = []
    run_seats([partial(order.append, n) for n in range(5)], 1)
    assert order == [0, 1, 2, 3, 4]  # one at a time: in the list's order


def test_network_cidrs_reads_libvirts_xml() -> None:
    xml = ("<network><name>x</name><ip address='10.1.2.1' netmask='255.255.255.0'/>"
           "<ip address='10.9.0.1' prefix='16'/><ip family='ipv6' address='fd00::1' "
           "prefix='64'/></network>")
    assert network_cidrs(xml) == [ipaddress.IPv4Network("10.1.2.0/24"),
                                  ipaddress.IPv4Network("10.9.0.0/16")]
    assert network_cidrs("<network><name>bare</name></network>") == []


def test_images_are_built_once_before_the_seats(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def build(name: str, _progress: object) -> tuple[None, bool]:
        built.append(name)
        return None, False

    monkeypatch.setattr(images, "find_image", lambda _name: None)
    monkeypatch.setattr(images, "build_image", build)
    build_images(parse_lab(COURSE + "seats: 3\n"), ProgressLines("quiet"))
    assert sorted(built) == ["debian-12", "prime"]  # at the same time, each once


def test_a_test_run_uses_one_seat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nestlab.testing import LabSession

    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    with pytest.raises(InputError, match=r"lab course has 3 seats: a test run uses one"):
        LabSession(lab_file(tmp_path, 3))
    session = LabSession(lab_file(tmp_path, 3), seat=2)
    assert (session.lab.name, session.lab_dir.name) == ("course-s02", "course-s02")
    assert LabSession(lab_file(tmp_path, None)).lab.name == "course"


def test_ctrl_c_cancels_the_running_seats_and_starts_no_more() -> None:
    cancel = threading.Event()
    started: list[int] = []

    def job(number: int) -> bool:
        started.append(number)
        if number == 0:  # Ctrl-C while the first seat waits for its L1
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            return cancel.wait(60)
        return True

    with pytest.raises(KeyboardInterrupt):
        run_seats([partial(job, n) for n in range(3)], 1, on_interrupt=cancel.set)
    assert cancel.is_set() and started == [0]
