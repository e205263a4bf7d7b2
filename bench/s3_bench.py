"""bench/s3_bench.py: the S3 tier of medvfs against rclone (and s3fs), run by `bench/run --s3`.

The acceptance of issue 22, measured against one Ceph RADOS Gateway started for the run
(tests/s3/ceph_cluster.sh) and warmed up (its first upload and first multipart upload each
create a pool, ~1.5 s, which must not fall on whoever comes first), with the same bytes for
every side, in the same run, the sides interleaved (their order rotates from round to round):

1. Replication: a tree of incompressible files (full: 1 GiB, files of 8-64 MiB and some small
   ones) is written into a fresh medvfs archive mounted with replicate=off and lies in a plain
   directory; then `medvfs remote sync ARCHIVE NAME` (every sealed pack, the packs still taking
   appends and a snapshot of the records) is timed against `rclone copy DIR bench:BUCKET` of
   the same tree (rclone's defaults: --transfers 4, --checkers 8, single PUTs below
   --s3-upload-cutoff 200Mi). A fresh archive and fresh buckets every round.
2. Cold sequential read: the largest file of that tree, `dd bs=1M` to /dev/null, through a
   fresh `medvfs mount s3://...` (an empty cache directory every time) against a fresh
   `rclone mount` (--vfs-cache-mode off, the default) and a fresh s3fs mount of rclone's
   bucket, the page cache dropped before each read. Also, without a goal, the whole tree read
   file after file on another fresh mount of each.
3. Remote `ls -lR`: a tree of small files (full: 2,000 in 50 directories) saved through a
   medvfs mount and replicated, and copied with rclone; `ls -lR` of it on a fresh medvfs remote
   mount against a fresh rclone mount (and s3fs), the page cache dropped before each. Also,
   without a goal: mount + ls -lR (a medvfs remote mount first fetches the snapshot's records),
   the replication of that tree, and the fixed cost of a `medvfs remote sync` with nothing new.

Goals (speed ratios medvfs/rclone): replication >= 1.0x, cold read >= 1.0x, ls -lR >= 2.0x.
Each timing is repeated (3 rounds; --quick: 1) and the medians are compared. The report
(Markdown) goes to bench/results/s3-latest.md unless bench/run --out says otherwise.

Only processes this module started are stopped (by PID); everything it mounted is unmounted
and the cluster is stopped, also on failure, Ctrl-C or SIGTERM (bench/run turns SIGTERM into
KeyboardInterrupt).
"""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
CLUSTER_SCRIPT = REPO / "tests" / "s3" / "ceph_cluster.sh"
PASSPHRASE = "bench-run passphrase, not a secret"
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
REGION = "default"
# medvfs's local mounts for the replication and ls workloads: packs sealed at 64 MiB (the
# default), no snapshot on its own, no replication but the timed `remote sync`.
LOCAL_MOUNT_OPTIONS = "pack_size=64M,snapshot_interval=3600,replicate=off"
REMOTE_CACHE_SIZE = "4G"
SIDES = ("medvfs", "rclone", "s3fs")
KEEP_BUCKET_BYTES = 6 * GIB  # what the replication rounds may leave in the gateway's 10 GiB OSD
SETTLE_SECONDS = 10


def log(message: str) -> None:
    print(f"bench s3: {message}", file=sys.stderr, flush=True)


class S3BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Sizes


@dataclass
class S3Sizes:
    data_bytes: int  # the replication tree, all files together
    big_min_mib: int  # its large files: sizes from .. to .. MiB, one of the largest size
    big_max_mib: int
    small_files: int  # its small files (1-64 KiB each)
    tree_files: int  # the ls -lR tree
    tree_dirs: int
    rounds: int


FULL = S3Sizes(GIB, 8, 64, 64, 2000, 50, 3)
QUICK = S3Sizes(64 * MIB, 4, 16, 16, 200, 10, 1)


# ---------------------------------------------------------------------------------------------
# Processes, mounts, timing


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    try:
        return subprocess.run(argv, **kwargs)
    except subprocess.CalledProcessError as error:
        detail = error.stderr or error.stdout or b""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        tail = " | ".join(detail.strip().splitlines()[-3:])
        raise S3BenchError(f"{' '.join(argv[:4])} ... failed with status {error.returncode}"
                           f"{': ' + tail if tail else ''}") from None


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(len(line.split()) > 1 and line.split()[1] == target for line in mounts)


def wait_until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise S3BenchError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_file(path: Path) -> int:
    """Reads `path` front to back in 1 MiB reads (as `dd bs=1M`); returns the bytes read."""
    total = 0
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(MIB):
            total += len(chunk)
    return total


def drop_caches(can_drop: bool) -> None:
    os.sync()
    if can_drop:
        Path("/proc/sys/vm/drop_caches").write_text("3")


class Daemon:
    """A FUSE daemon run in the foreground, in a session of its own (Ctrl-C reaches only this
    script, which then unmounts in order), stopped by unmounting, then by its PID."""

    def __init__(self, name: str, argv: list[str], env: dict, mountpoint: Path, log_path: Path,
                 unmount: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.mountpoint = mountpoint
        self.log_path = log_path
        self.unmount = unmount
        self.proc: subprocess.Popen | None = None
        self.mount_seconds = 0.0

    def start(self) -> None:
        self.mountpoint.mkdir(parents=True)
        start = time.perf_counter()
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log_file, stderr=log_file,
                                         start_new_session=True)
        wait_until(lambda: is_mounted(self.mountpoint) or self.proc.poll() is not None, 300,
                   f"{self.name} to mount")
        self.mount_seconds = time.perf_counter() - start
        if not is_mounted(self.mountpoint):
            tail = " | ".join(self.log_path.read_text(errors="replace").strip()
                              .splitlines()[-3:])
            raise S3BenchError(f"{self.name} did not mount {self.mountpoint} (exit status "
                               f"{self.proc.returncode}): {tail}")

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def stop(self) -> None:
        if is_mounted(self.mountpoint):
            subprocess.run(self.unmount, env=self.env, check=False, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if is_mounted(self.mountpoint):
                subprocess.run(["fusermount3", "-u", str(self.mountpoint)], check=False,
                               stderr=subprocess.DEVNULL)
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ({self.proc.pid}) did not exit after the unmount: SIGTERM")
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        if is_mounted(self.mountpoint):  # the daemon is gone: only a lazy unmount is left
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False)
        if not is_mounted(self.mountpoint) and self.mountpoint.exists():
            try:
                self.mountpoint.rmdir()
            except OSError:
                pass


class Profiler:
    """perf record of one daemon during one step (--perf), stopped by its PID."""

    def __init__(self, enabled: bool, out_dir: Path) -> None:
        self.enabled = enabled and shutil.which("perf") is not None
        self.out_dir = out_dir
        self.proc: subprocess.Popen | None = None
        self.data: Path | None = None

    def start(self, pid: int, label: str, work: Path) -> None:
        if not self.enabled:
            return
        self.data = work / f"perf-{label}.data"
        self.label = label
        self.proc = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid), "-o",
                                      str(self.data)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        time.sleep(0.3)  # perf attaches to the threads

    def stop(self) -> None:
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        report = self.out_dir / f"s3-perf-{self.label}.txt"
        with open(report, "w", encoding="utf-8") as out:
            for sort in ("comm,dso", "dso,sym"):
                result = subprocess.run(["perf", "report", "--stdio", "--no-children",
                                         "--percent-limit", "0.5", "--sort", sort, "-g", "none",
                                         "-i", str(self.data)],
                                        capture_output=True, text=True, check=False)
                kept = [line for line in result.stdout.splitlines()
                        if line.strip() and not line.startswith("#")]
                out.write(f"### perf report --sort {sort}\n" + "\n".join(kept[:60]) + "\n\n")
        log(f"profile: {report}")


# ---------------------------------------------------------------------------------------------
# The gateway


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started = False
        self.env: dict[str, str] = {}

    def start(self) -> None:
        log(f"starting the Ceph cluster in {self.directory} (about 20 s)")
        self.started = True  # from here on, stop() has something to stop, even half-started
        result = run([str(CLUSTER_SCRIPT), "start", str(self.directory)], capture_output=True,
                     text=True)
        env_file = Path(result.stdout.strip().splitlines()[-1])
        for line in env_file.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                self.env[key.strip()] = value.strip()
        for key in ("MEDVFS_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if not self.env.get(key):
                raise S3BenchError(f"{env_file} has no {key}")

    @property
    def endpoint(self) -> str:
        return self.env["MEDVFS_S3_ENDPOINT"]

    def collect_garbage(self) -> None:
        """Makes the gateway free the space of deleted objects now, not hours later."""
        subprocess.run(["radosgw-admin", "-c", str(self.directory / "ceph.conf"), "-n",
                        "client.admin", "gc", "process", "--include-all"], check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)

    def version(self) -> str:
        out = subprocess.run(["radosgw", "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
        return out.split("(")[0].strip() or "ceph ?"

    def stop(self) -> None:
        if not self.started:
            return
        log("stopping the Ceph cluster")
        subprocess.run([str(CLUSTER_SCRIPT), "stop", str(self.directory)], check=False,
                       stdin=subprocess.DEVNULL)
        self.started = False


# ---------------------------------------------------------------------------------------------
# Inputs


def write_fresh_bytes(path: Path, size: int) -> None:
    """`size` incompressible bytes never seen before (AES-CTR keystream with a fresh key)."""
    key, iv = os.urandom(32).hex(), os.urandom(16).hex()
    command = (f"openssl enc -aes-256-ctr -nosalt -K {key} -iv {iv} -in /dev/zero 2>/dev/null "
               f"| head -c {size} > '{path}'; exit \"${{PIPESTATUS[-1]}}\"")
    run(["bash", "-c", command])
    if path.stat().st_size != size:
        raise S3BenchError(f"{path} got {path.stat().st_size} bytes, not {size}")


def make_replication_tree(root: Path, sizes: S3Sizes) -> tuple[Path, int, int]:
    """root/data/big/*.bin (large files, the first of the largest size) and
    root/data/small/*.dat; returns (the largest file, relative to root; total bytes; files)."""
    rng = random.Random(20261222)
    big = root / "data" / "big"
    small = root / "data" / "small"
    big.mkdir(parents=True)
    small.mkdir(parents=True)
    small_total = 0
    for index in range(sizes.small_files):
        size = rng.randint(1, 64) * KIB - rng.randint(0, 1000)
        (small / f"note{index:03d}.dat").write_bytes(os.urandom(size))
        small_total += size
    remaining = sizes.data_bytes - small_total
    files = sizes.small_files
    index = 0
    largest = big / "vol000.bin"
    while remaining > 0:
        size = sizes.big_max_mib * MIB if index == 0 else \
            rng.randint(sizes.big_min_mib, sizes.big_max_mib) * MIB
        size = min(size, remaining)
        write_fresh_bytes(big / f"vol{index:03d}.bin", size)
        remaining -= size
        index += 1
        files += 1
    return largest.relative_to(root), sizes.data_bytes, files


def make_small_tree(root: Path, sizes: S3Sizes) -> int:
    """root/tree/dNN/fNNNN.dat: tree_files small files (0.5-16 KiB) in tree_dirs directories."""
    rng = random.Random(20261223)
    for index in range(sizes.tree_files):
        directory = root / "tree" / f"d{index % sizes.tree_dirs:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.randint(512, 16 * KIB)
        (directory / f"f{index:04d}.dat").write_bytes(os.urandom(size))
    return sizes.tree_files


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Series:
    """Timings of one side of one measurement, one per round."""
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add_extra(self, key: str, value: float) -> None:
        self.extra.setdefault(key, []).append(value)

    def median_seconds(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def median_extra(self, key: str) -> float | None:
        values = self.extra.get(key)
        return statistics.median(values) if values else None


@dataclass
class Measurement:
    key: str
    title: str
    unit: str  # MiB/s or files/s
    amount: float  # MiB or files per timing
    goal: float | None  # least speed ratio medvfs/rclone
    sides: dict[str, Series] = field(default_factory=dict)

    def side(self, name: str) -> Series:
        return self.sides.setdefault(name, Series())

    def rate(self, name: str) -> float | None:
        series = self.sides.get(name)
        seconds = series.median_seconds() if series else None
        return self.amount / seconds if seconds else None

    def ratio(self) -> float | None:
        m, r = self.rate("medvfs"), self.rate("rclone")
        return m / r if m and r else None


# ---------------------------------------------------------------------------------------------
# The benchmark


class S3Bench:
    def __init__(self, binary: Path, sizes: S3Sizes, work: Path, can_drop: bool,
                 use_s3fs: bool, profile: bool, quick: bool, profile_dir: Path) -> None:
        self.binary = binary
        self.sizes = sizes
        self.work = work
        self.can_drop = can_drop
        self.use_s3fs = use_s3fs
        self.quick = quick
        self.cluster = Cluster(work / "ceph")
        self.daemons: list[Daemon] = []
        self.profiler = Profiler(profile, profile_dir)
        self.env: dict[str, str] = {}
        self.serial = 0
        self.notes: list[str] = []
        self.rep = Measurement("replication", "", "MiB/s", 0, 1.0)
        self.read = Measurement("cold_read", "", "MiB/s", 0, 1.0)
        self.read_all = Measurement("cold_read_all", "", "MiB/s", 0, None)
        self.idle_sync = Measurement("idle_sync", "`medvfs remote sync` right after, with "
                                     "nothing new to upload (fixed cost, s)", "s", 0, None)
        self.ls = Measurement("ls_lR", "", "files/s", 0, 2.0)
        self.tree_rep = Measurement("tree_replication", "", "files/s", 0, None)
        self.mount_ls = Measurement("mount_ls_lR", "", "files/s", 0, None)
        self.bucket_bytes: dict[str, tuple[int, int]] = {}  # side -> (bytes, objects)
        self.sync_output: list[str] = []

    # -- helpers -------------------------------------------------------------------------------

    def next_name(self, stem: str) -> str:
        self.serial += 1
        return f"{stem}{self.serial:02d}"

    def medvfs(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run([str(self.binary), *args], env=self.env, **kwargs)

    def rclone(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run(["rclone", *args], env=self.env, **kwargs)

    def start_daemon(self, daemon: Daemon) -> Daemon:
        self.daemons.append(daemon)
        daemon.start()
        return daemon

    def stop_daemon(self, daemon: Daemon) -> None:
        try:
            daemon.stop()
        finally:
            if daemon in self.daemons and not is_mounted(daemon.mountpoint):
                self.daemons.remove(daemon)

    def stop_all(self) -> None:
        for daemon in reversed(list(self.daemons)):
            try:
                self.stop_daemon(daemon)
            except Exception as error:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {daemon.name} at {daemon.mountpoint}: {error}")
        self.profiler.stop()
        self.cluster.stop()

    def mount_local(self, archive: Path, label: str) -> Daemon:
        mountpoint = self.work / f"{label}.mnt"
        return self.start_daemon(Daemon(
            "medvfs", [str(self.binary), "mount", "-f", str(archive), str(mountpoint), "-o",
                       LOCAL_MOUNT_OPTIONS], self.env, mountpoint,
            self.work / f"{label}.log", [str(self.binary), "umount", str(mountpoint)]))

    def mount_remote(self, side: str, bucket: str, label: str) -> Daemon:
        """A fresh mount of `bucket` by `side`: medvfs (an empty cache directory), rclone mount
        or s3fs."""
        mountpoint = self.work / f"{label}.{side}.mnt"
        log_path = self.work / f"{label}.{side}.log"
        fusermount = ["fusermount3", "-u", str(mountpoint)]
        if side == "medvfs":
            cache = self.work / f"{label}.cache"
            options = (f"cache={cache},cache_size={REMOTE_CACHE_SIZE},"
                       f"endpoint={self.cluster.endpoint},region={REGION}")
            argv = [str(self.binary), "mount", "-f", f"s3://{bucket}/archive", str(mountpoint),
                    "-o", options]
            return self.start_daemon(Daemon(side, argv, self.env, mountpoint, log_path,
                                            [str(self.binary), "umount", str(mountpoint)]))
        if side == "rclone":
            argv = ["rclone", "mount", f"bench:{bucket}", str(mountpoint)]
            return self.start_daemon(Daemon(side, argv, self.env, mountpoint, log_path,
                                            fusermount))
        argv = ["s3fs", bucket, str(mountpoint), "-f", "-o",
                f"url={self.cluster.endpoint},use_path_request_style,endpoint={REGION}"]
        return self.start_daemon(Daemon(side, argv, self.env, mountpoint, log_path, fusermount))

    def remove_cache(self, label: str) -> None:
        shutil.rmtree(self.work / f"{label}.cache", ignore_errors=True)

    def bucket_size(self, path: str) -> tuple[int, int]:
        out = self.rclone("size", "--json", f"bench:{path}", capture_output=True,
                          text=True).stdout
        data = json.loads(out)
        return int(data["bytes"]), int(data["count"])

    def purge(self, bucket: str) -> None:
        subprocess.run(["rclone", "purge", f"bench:{bucket}"], env=self.env, check=False,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def sides(self, round_index: int, with_s3fs: bool) -> list[str]:
        names = ["medvfs", "rclone"] + (["s3fs"] if with_s3fs and self.use_s3fs else [])
        shift = round_index % len(names)
        return names[shift:] + names[:shift]

    def check_remote(self, archive: Path, name: str) -> None:
        listed = json.loads(self.medvfs("remote", "list", str(archive), "--json",
                                        capture_output=True, text=True).stdout)
        for remote in listed:
            if remote.get("name") != name:
                continue
            if remote.get("last_error"):
                raise S3BenchError(f"remote {name}: {remote['last_error']}")
            if remote.get("packs_uploaded") != remote.get("packs_local") or \
                    remote.get("lag_bytes", 0) != 0 or not remote.get("snapshot_seq"):
                raise S3BenchError(f"remote {name} is not complete after sync: {remote}")
            return
        raise S3BenchError(f"remote {name} is not listed")

    def replicate_with_medvfs(self, daemon: Daemon, archive: Path, bucket: str,
                              series: Series, label: str) -> None:
        drop_caches(self.can_drop)
        cpu_daemon = cpu_seconds(daemon.pid)
        cpu_children = children_cpu_seconds()
        self.profiler.start(daemon.pid, f"sync-{label}", self.work)
        start = time.perf_counter()
        try:
            result = self.medvfs("remote", "sync", str(archive), "bench", capture_output=True,
                                 text=True)
        finally:
            seconds = time.perf_counter() - start
            self.profiler.stop()
        series.seconds.append(seconds)
        series.add_extra("cpu", cpu_seconds(daemon.pid) - cpu_daemon +
                         children_cpu_seconds() - cpu_children)
        self.sync_output.append(result.stdout.strip())
        log(f"  medvfs remote sync: {seconds:.2f} s ({result.stdout.strip()})")
        self.check_remote(archive, "bench")
        if label.startswith("rep"):
            # The same command with nothing new: its fixed cost (key check, a snapshot).
            start = time.perf_counter()
            self.medvfs("remote", "sync", str(archive), "bench", capture_output=True)
            self.idle_sync.side("medvfs").seconds.append(time.perf_counter() - start)

    def replicate_with_rclone(self, source: Path, bucket: str, series: Series) -> None:
        drop_caches(self.can_drop)
        cpu_children = children_cpu_seconds()
        start = time.perf_counter()
        self.rclone("copy", str(source), f"bench:{bucket}", capture_output=True, text=True)
        seconds = time.perf_counter() - start
        series.seconds.append(seconds)
        series.add_extra("cpu", children_cpu_seconds() - cpu_children)
        log(f"  rclone copy: {seconds:.2f} s")

    def fill_archive(self, source: Path, label: str, bucket: str) -> tuple[Path, Daemon]:
        """A fresh archive holding a copy of `source`'s tree, mounted (replicate=off), with the
        remote "bench" at s3://bucket/archive (nothing uploaded yet)."""
        archive = self.work / f"{label}.archive"
        self.medvfs("init", str(archive), stdout=subprocess.DEVNULL)
        daemon = self.mount_local(archive, label)
        for entry in source.iterdir():
            run(["cp", "-a", str(entry), str(daemon.mountpoint)])
        self.medvfs("remote", "add", str(archive), "bench", f"s3://{bucket}/archive",
                    "--endpoint", self.cluster.endpoint, "--region", REGION,
                    stdout=subprocess.DEVNULL)
        return archive, daemon

    def retire_archive(self, daemon: Daemon, archive: Path) -> None:
        self.stop_daemon(daemon)
        if not is_mounted(daemon.mountpoint):
            shutil.rmtree(archive, ignore_errors=True)

    def timed_step(self, series: Series, side: str, what: str,
                   action: Callable[[], None]) -> None:
        """Runs one side's step, recording a failure instead of ending the run."""
        try:
            action()
        except (S3BenchError, OSError, subprocess.SubprocessError) as error:
            log(f"  {side} {what} failed: {error}")
            series.errors.append(str(error))

    # -- workloads -----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """The gateway's first object and first multipart upload create its data and non-ec
        pools (about 1.5 s each on this cluster): done here, untimed, so that no side pays."""
        bucket = "warm-up"
        self.rclone("mkdir", f"bench:{bucket}")
        scratch = self.work / "warm-up.bin"
        write_fresh_bytes(scratch, 16 * MIB)
        self.rclone("copyto", str(scratch), f"bench:{bucket}/single")
        self.rclone("copyto", "--s3-upload-cutoff", "5Mi", str(scratch),
                    f"bench:{bucket}/multipart")
        self.purge(bucket)
        scratch.unlink()

    def replication(self, source: Path, total_bytes: int, files: int) -> list[str]:
        """Returns the buckets of the last round (medvfs, rclone), kept for the reads."""
        self.rep.amount = total_bytes / MIB
        self.rep.title = (f"replication of {total_bytes / MIB:.0f} MiB in {files} files: "
                          "`medvfs remote sync` vs `rclone copy`")
        kept: list[str] = []
        # Every round's buckets stay while they fit in the OSD (10 GiB), with room to spare.
        keep_all = 2 * total_bytes * self.sizes.rounds <= KEEP_BUCKET_BYTES
        if not keep_all:
            self.notes.append(f"The buckets of each replication round but the last were "
                              f"deleted after it (then {SETTLE_SECONDS} s of pause).")
        for round_index in range(self.sizes.rounds):
            label = self.next_name("rep")
            bucket_m, bucket_r = f"medvfs-{label}", f"rclone-{label}"
            log(f"replication: round {round_index + 1}/{self.sizes.rounds}")
            for bucket in (bucket_m, bucket_r):
                self.rclone("mkdir", f"bench:{bucket}")
            archive, daemon = None, None
            try:
                archive, daemon = self.fill_archive(source, label, bucket_m)
                for side in self.sides(round_index, with_s3fs=False):
                    series = self.rep.side(side)
                    if side == "medvfs":
                        self.timed_step(series, side, "remote sync",
                                        lambda: self.replicate_with_medvfs(
                                            daemon, archive, bucket_m, series, label))
                    else:
                        self.timed_step(series, side, "copy",
                                        lambda: self.replicate_with_rclone(source, bucket_r,
                                                                           series))
            except S3BenchError as error:
                log(f"  medvfs: preparing the archive failed: {error}")
                self.rep.side("medvfs").errors.append(str(error))
            finally:
                if daemon:
                    self.retire_archive(daemon, archive)
            if round_index + 1 == self.sizes.rounds:
                kept = [bucket_m, bucket_r]
            elif not keep_all:
                # Deleted objects keep the OSD busy for a while: whoever came next would pay.
                self.purge(bucket_m)
                self.purge(bucket_r)
                self.cluster.collect_garbage()
                time.sleep(SETTLE_SECONDS)
        try:
            self.bucket_bytes["medvfs"] = self.bucket_size(f"{kept[0]}/archive")
            self.bucket_bytes["rclone"] = self.bucket_size(kept[1])
        except (S3BenchError, ValueError, KeyError) as error:
            log(f"bucket sizes: {error}")
        return kept

    def cold_read(self, buckets: list[str], source: Path, relative: Path) -> None:
        """The largest file (the goal row), then, on another fresh mount, the whole tree."""
        size = (source / relative).stat().st_size
        self.read.amount = size / MIB
        self.read.title = (f"cold sequential read of one {size / MIB:.0f} MiB file "
                           "(`dd bs=1M`), fresh mount")
        everything = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
        total = sum((source / p).stat().st_size for p in everything)
        self.read_all.amount = total / MIB
        self.read_all.title = (f"cold sequential read of the whole tree ({total / MIB:.0f} MiB, "
                               f"{len(everything)} files one after the other), fresh mount")
        bucket_of = {"medvfs": buckets[0], "rclone": buckets[1], "s3fs": buckets[1]}
        for round_index in range(self.sizes.rounds):
            log(f"cold read: round {round_index + 1}/{self.sizes.rounds}")
            for side in self.sides(round_index, with_s3fs=True):
                for measurement, paths in ((self.read, [relative]),
                                           (self.read_all, everything)):
                    series = measurement.side(side)
                    label = self.next_name("read")

                    def step(side=side, series=series, label=label, paths=paths,
                             amount=measurement.amount) -> None:
                        daemon = self.mount_remote(side, bucket_of[side], label)
                        try:
                            series.add_extra("mount", daemon.mount_seconds)
                            drop_caches(self.can_drop)
                            if side == "medvfs":
                                self.profiler.start(daemon.pid, f"read-{label}", self.work)
                            start = time.perf_counter()
                            try:
                                if len(paths) == 1:
                                    run(["dd", f"if={daemon.mountpoint / paths[0]}",
                                         "of=/dev/null", "bs=1M", "status=none"],
                                        capture_output=True)
                                else:
                                    for path in paths:
                                        read_file(daemon.mountpoint / path)
                            finally:
                                seconds = time.perf_counter() - start
                                self.profiler.stop()
                            series.seconds.append(seconds)
                            log(f"  {side}: {seconds:.2f} s ({amount / seconds:.1f} MiB/s; "
                                f"mounted in {daemon.mount_seconds:.2f} s)")
                            if len(paths) == 1:
                                run(["cmp", str(daemon.mountpoint / paths[0]),
                                     str(source / paths[0])], capture_output=True)
                        finally:
                            self.stop_daemon(daemon)
                            self.remove_cache(label)

                    self.timed_step(series, side, "cold read", step)

    def listing(self, source: Path, files: int) -> None:
        self.ls.amount = files
        self.ls.title = (f"`ls -lR` of {files} files in {self.sizes.tree_dirs} directories, "
                         "fresh mount")
        self.mount_ls.amount = files
        self.mount_ls.title = "mount + `ls -lR` of the same tree, fresh mount (cache)"
        self.tree_rep.amount = files
        self.tree_rep.title = (f"replication of those {files} small files: `medvfs remote "
                               "sync` vs `rclone copy`")
        label = self.next_name("tree")
        bucket_m, bucket_r = f"medvfs-{label}", f"rclone-{label}"
        for bucket in (bucket_m, bucket_r):
            self.rclone("mkdir", f"bench:{bucket}")
        log("ls -lR: saving the tree through medvfs and replicating it")
        archive, daemon = self.fill_archive(source, label, bucket_m)
        try:
            self.replicate_with_medvfs(daemon, archive, bucket_m, self.tree_rep.side("medvfs"),
                                       label)
        finally:
            self.retire_archive(daemon, archive)
        self.replicate_with_rclone(source, bucket_r, self.tree_rep.side("rclone"))
        bucket_of = {"medvfs": bucket_m, "rclone": bucket_r, "s3fs": bucket_r}
        for round_index in range(self.sizes.rounds):
            log(f"ls -lR: round {round_index + 1}/{self.sizes.rounds}")
            for side in self.sides(round_index, with_s3fs=True):
                series = self.ls.side(side)
                label = self.next_name("ls")

                def step(side=side, series=series, label=label) -> None:
                    daemon = self.mount_remote(side, bucket_of[side], label)
                    try:
                        tree = daemon.mountpoint / "tree"
                        drop_caches(self.can_drop)
                        if side == "medvfs":
                            self.profiler.start(daemon.pid, f"ls-{label}", self.work)
                        start = time.perf_counter()
                        try:
                            run(["ls", "-lR", str(tree)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
                        finally:
                            seconds = time.perf_counter() - start
                            self.profiler.stop()
                        series.seconds.append(seconds)
                        self.mount_ls.side(side).seconds.append(seconds + daemon.mount_seconds)
                        series.add_extra("mount", daemon.mount_seconds)
                        log(f"  {side}: {seconds:.3f} s ({files / seconds:.0f} files/s; "
                            f"mounted in {daemon.mount_seconds:.2f} s)")
                        found = run(["find", str(tree), "-type", "f"], capture_output=True,
                                    text=True).stdout.count("\n")
                        if found != files:
                            raise S3BenchError(f"{side} lists {found} files, not {files}")
                    finally:
                        self.stop_daemon(daemon)
                        self.remove_cache(label)

                self.timed_step(series, side, "ls -lR", step)

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> None:
        self.cluster.start()
        endpoint = self.cluster.endpoint
        rclone_conf = self.work / "rclone.conf"
        rclone_conf.write_text("")
        self.env = dict(os.environ, MEDVFS_PASSPHRASE=PASSPHRASE,
                        AWS_ACCESS_KEY_ID=self.cluster.env["AWS_ACCESS_KEY_ID"],
                        AWS_SECRET_ACCESS_KEY=self.cluster.env["AWS_SECRET_ACCESS_KEY"],
                        AWS_DEFAULT_REGION=REGION, RCLONE_CONFIG=str(rclone_conf),
                        RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Ceph",
                        RCLONE_CONFIG_BENCH_ENV_AUTH="false",
                        RCLONE_CONFIG_BENCH_ENDPOINT=endpoint,
                        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=self.cluster.env["AWS_ACCESS_KEY_ID"],
                        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=self.cluster.env[
                            "AWS_SECRET_ACCESS_KEY"],
                        RCLONE_CONFIG_BENCH_REGION=REGION)
        # AWS_CA_BUNDLE (set in some sandboxes) makes rclone 1.60 fail: "unsupported transport".
        for stale in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                      "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            self.env.pop(stale, None)
        log("warming the gateway up (its first upload and first multipart upload)")
        self.warm_up()
        log("making inputs")
        rep_source = self.work / "src-rep"
        largest, total, files = make_replication_tree(rep_source, self.sizes)
        tree_source = self.work / "src-tree"
        tree_files = make_small_tree(tree_source, self.sizes)
        buckets = self.replication(rep_source, total, files)
        if buckets:
            self.cold_read(buckets, rep_source, largest)
        self.listing(tree_source, tree_files)

    # -- the report ----------------------------------------------------------------------------

    def report(self, medvfs_version: str) -> tuple[str, bool]:
        """The Markdown report, and whether every goal row has numbers."""
        now = datetime.now(timezone.utc)
        lines = [f"## medvfs S3 tier against rclone and s3fs ({now:%Y-%m-%dT%H:%M:%SZ}"
                 f"{', quick' if self.quick else ''})", "",
                 f"One Ceph RADOS Gateway ({self.cluster_version}, one OSD, on this host) for "
                 f"every side, in one run; the same bytes; sides interleaved, their order "
                 f"rotating each round; medians of {self.sizes.rounds} round(s). Rates: higher "
                 "is better; ratio: medvfs/rclone speed (above 1: medvfs is faster).", "",
                 "| workload | unit | medvfs | rclone | s3fs | medvfs/rclone | goal | met |",
                 "|---|---|---|---|---|---|---|---|"]
        complete = True
        for m in (self.rep, self.read, self.ls):
            ratio = m.ratio()
            if ratio is None:
                complete = False
                met = "no numbers"
            else:
                met = "PASS" if ratio >= m.goal else f"**MISS** ({ratio / m.goal:.2f} of it)"
            lines.append(f"| {m.title} | {m.unit} | {self.cell(m, 'medvfs')} | "
                         f"{self.cell(m, 'rclone')} | {self.cell(m, 's3fs')} | "
                         f"{'-' if ratio is None else f'{ratio:.2f}x'} | >= {m.goal:.1f}x | "
                         f"{met} |")
        lines += ["", "### Other measurements (no goal)", "",
                  "| measurement | medvfs | rclone | s3fs |", "|---|---|---|---|"]
        for m in (self.read_all, self.tree_rep, self.mount_ls):
            lines.append(f"| {m.title} ({m.unit}) | {self.cell(m, 'medvfs')} | "
                         f"{self.cell(m, 'rclone')} | {self.cell(m, 's3fs')} |")
        idle = self.idle_sync.sides.get("medvfs")
        if idle and idle.seconds:
            lines.append(f"| {self.idle_sync.title} | {idle.median_seconds():.2f} | - | - |")
        for m, what in ((self.read, "cold read"), (self.read_all, "whole-tree read"),
                        (self.ls, "ls -lR")):
            cells = []
            for side in SIDES:
                value = m.sides[side].median_extra("mount") if side in m.sides else None
                cells.append("-" if value is None else f"{value:.2f}")
            lines.append(f"| time to mount (s), {what} mounts | " + " | ".join(cells) + " |")
        cells = []
        for side in ("medvfs", "rclone"):
            series = self.rep.sides.get(side)
            cpu = series.median_extra("cpu") if series else None
            cells.append("-" if cpu is None else f"{cpu / (self.rep.amount / 1024):.1f}")
        lines.append("| CPU seconds per GiB replicated (medvfs: daemon + command; rclone) | "
                     + " | ".join(cells) + " | - |")
        if self.bucket_bytes:
            cells = []
            for side in ("medvfs", "rclone"):
                if side in self.bucket_bytes:
                    size, count = self.bucket_bytes[side]
                    cells.append(f"{size / MIB:.1f} MiB in {count} objects")
                else:
                    cells.append("-")
            lines.append("| bucket after one replication round | " + " | ".join(cells) +
                         " | - |")
        lines += ["", "### Every round (seconds)", "",
                  "| workload | side | seconds per round | failures |", "|---|---|---|---|"]
        for m in (self.rep, self.idle_sync, self.read, self.read_all, self.ls, self.tree_rep):
            for side in SIDES:
                if side not in m.sides:
                    continue
                series = m.sides[side]
                rounds = ", ".join(f"{s:.3f}" for s in series.seconds) or "-"
                errors = "; ".join(e.replace("|", "/")[:200] for e in series.errors) or "-"
                lines.append(f"| {m.key} | {side} | {rounds} | {errors} |")
        if self.sync_output:
            lines += ["", "`medvfs remote sync` said: " +
                      "; ".join(f"`{o}`" for o in self.sync_output if o)]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rclone_version = subprocess.run(["rclone", "version"], capture_output=True, text=True,
                                        check=False).stdout.splitlines()[:1]
        s3fs_version = subprocess.run(["s3fs", "--version"], capture_output=True, text=True,
                                      check=False).stdout.splitlines()[:1]
        lines += ["", "### How it was measured", "",
                  f"- Gateway: {self.cluster_version} RGW (beast) on 127.0.0.1, one bluestore "
                  "OSD in a sparse file on the local disk (tests/s3/ceph_cluster.sh), started "
                  "for this run, then warmed up (one PUT and one multipart upload, untimed: "
                  "the first of each creates a pool, ~1.5 s). Its OSD reads with O_DIRECT and "
                  "keeps its own cache: dropping the page cache does not empty the gateway's "
                  "cache, for any side.",
                  f"- medvfs: {medvfs_version}; local mounts `-o {LOCAL_MOUNT_OPTIONS}`, a "
                  "fresh archive per round filled with `cp -a`, then `medvfs remote add ... "
                  "s3://BUCKET/archive` and the timed `medvfs remote sync ARCHIVE bench` "
                  "(done by the mount daemon; the time includes the command's key check and "
                  "the snapshot). Remote mounts: `medvfs mount -f s3://BUCKET/archive MNT -o "
                  f"cache=FRESH_DIR,cache_size={REMOTE_CACHE_SIZE},endpoint=...,region="
                  f"{REGION}`.",
                  f"- rclone: {' '.join(rclone_version)}, configured through "
                  "RCLONE_CONFIG_BENCH_* (type s3, provider Ceph); `rclone copy DIR "
                  "bench:BUCKET` with the defaults (--transfers 4, --checkers 8, "
                  "--s3-upload-cutoff 200Mi, --s3-chunk-size 5Mi, --s3-upload-concurrency 4); "
                  "`rclone mount bench:BUCKET MNT` with the defaults (--vfs-cache-mode off, "
                  "--vfs-read-chunk-size 128Mi, --buffer-size 16Mi, --dir-cache-time 5m, "
                  "--attr-timeout 1s), a fresh mount per timing.",
                  f"- s3fs: {' '.join(s3fs_version)}, `s3fs BUCKET MNT -f -o url=...,"
                  f"use_path_request_style,endpoint={REGION}` (no local cache), of rclone's "
                  "bucket, a fresh mount per timing." if self.use_s3fs else
                  "- s3fs: not run.",
                  f"- Inputs: {self.rep.amount:.0f} MiB of AES-CTR keystream (incompressible, "
                  f"never seen before) in files of {self.sizes.big_min_mib}-"
                  f"{self.sizes.big_max_mib} MiB plus {self.sizes.small_files} files of 1-64 "
                  f"KiB; the ls tree: {self.sizes.tree_files} random files of 0.5-16 KiB in "
                  f"{self.sizes.tree_dirs} directories. Replication rates are the tree's bytes "
                  "over the time (what each side uploads besides, e.g. medvfs's snapshot, "
                  "is in the time).",
                  f"- Page cache {'dropped' if self.can_drop else 'NOT dropped (not root)'} "
                  "(sync; echo 3 > /proc/sys/vm/drop_caches) before every timed step.",
                  f"- {platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs, "
                  f"load {load} at the end."]
        lines += [f"- {note}" for note in self.notes] + [""]
        if self.profiler.enabled:
            lines.insert(2, "**Profiled run (--perf): perf record was attached to the medvfs "
                            "daemon during its timed steps; its numbers are not clean.**\n")
        return "\n".join(lines), complete

    @staticmethod
    def cell(m: Measurement, side: str) -> str:
        series = m.sides.get(side)
        if not series:
            return "-"
        rate = m.rate(side)
        text = "-" if rate is None else (f"{rate:.1f}" if rate < 1000 else f"{rate:,.0f}")
        if series.errors:
            text += f" ({len(series.errors)} failed)"
        return text


# ---------------------------------------------------------------------------------------------
# Entry point (bench/run --s3)


def missing_tools() -> list[str]:
    """Debian packages to install for the S3 comparison."""
    needed = {"rclone": "rclone", "s3fs": "s3fs", "ceph-mon": "ceph-mon", "ceph-mgr": "ceph-mgr",
              "ceph-osd": "ceph-osd", "radosgw": "radosgw", "ceph": "ceph-common",
              "uuidgen": "uuid-runtime", "curl": "curl", "openssl": "openssl",
              "fusermount3": "fuse3"}
    return sorted({package for tool, package in needed.items() if not shutil.which(tool)})


def main(binary: Path, quick: bool, rounds: int | None, base_dir: Path, out: Path | None,
         profile: bool = False, use_s3fs: bool = True) -> int:
    import tempfile

    sizes = QUICK if quick else FULL
    if rounds:
        sizes.rounds = rounds
    out = out or RESULTS_DIR / "s3-latest.md"
    medvfs_version = run([str(binary), "--version"], capture_output=True,
                         text=True).stdout.strip()
    can_drop = os.geteuid() == 0
    use_s3fs = use_s3fs and shutil.which("s3fs") is not None
    work = Path(tempfile.mkdtemp(prefix="medvfs-bench-s3.", dir=base_dir))
    bench = S3Bench(binary, sizes, work, can_drop, use_s3fs, profile, quick, out.parent)
    bench.cluster_version = bench.cluster.version()
    started = time.monotonic()
    try:
        bench.run()
    finally:
        # A second Ctrl-C or SIGTERM must not cut the clean-up short.
        previous = {sig: signal.signal(sig, signal.SIG_IGN)
                    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            bench.stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not any(is_mounted(d.mountpoint) for d in bench.daemons):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"left {work} in place: something is still mounted there")
    bench.notes.append(f"The S3 comparison took {(time.monotonic() - started) / 60:.1f} "
                       "minutes in all (cluster start included).")
    markdown, complete = bench.report(medvfs_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    print(markdown)
    log(f"report: {out}")
    return 0 if complete else 1
