"""The application framework: start, run, signals and shutdown (SPDK's ``lib/event/app.c``).

Startup follows SPDK's order (SPEC §6.3): validate the options, set up logging, check the core
mask against the cores this process may use *before anything starts* (deviation 2), claim core
locks (only when busy-polling, deviation 9), create the reactors and the app thread, install the
signal handlers, read the JSON config, then send the bootstrap message to the app thread and run
the reactors until they stop. Bootstrap loads the STARTUP part of the config, initialises the
subsystems, loads the RUNTIME part and calls the application's ``start_fn``.

Shutdown: the first SIGINT/SIGTERM posts a critical message to the app thread, which calls the
application's shutdown callback (or stops the app). Stopping tears the subsystems down in reverse
and stops the reactors, which exit their remaining threads. A watchdog forces the exit after
``shutdown_timeout_s`` with a report of what held each thread (deviation 6); a second signal
forces it at once.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import final

from spdkpy._log import NOTICE, notice, set_log_flag, set_log_level, setup_logging
from spdkpy.app._config import JsonConfig, MethodSpec, methods_from_registry, replay_config
from spdkpy.app._core_locks import CoreLocks
from spdkpy.app._opts import AppOptions
from spdkpy.app._rpc_methods import register_app_methods
from spdkpy.app._subsystem import Subsystem, SubsystemRegistry
from spdkpy.env import CpuSet, available_cores, parse_app_mask, parse_main_core
from spdkpy.errors import ConfigError, InvalidStateError, SpdkpyError, ThreadExitedError
from spdkpy.event import (
    DEFAULT_SCHEDULER_PERIOD_US,
    ReactorFramework,
    reactors_fini,
    reactors_init,
    scheduler_names,
)
from spdkpy.rpc import RpcRegistry, RpcServer, RpcState
from spdkpy.thread import Thread

__all__ = ["App", "app_start_shutdown", "app_stop", "get_app"]

log = logging.getLogger("spdkpy.app")

_FORCED_EXIT_CODE = 1


@final
class App:
    """One application run. ``App(opts).start(start_fn)`` blocks until the app stops and returns
    its exit code; invalid options or masks raise :class:`~spdkpy.errors.InputError` before
    anything starts.
    """

    def __init__(
        self,
        opts: AppOptions,
        *,
        subsystems: SubsystemRegistry | None = None,
        methods: Mapping[str, MethodSpec] | None = None,
    ) -> None:
        self.opts = opts
        self.subsystems = subsystems if subsystems is not None else SubsystemRegistry()
        self.methods: Mapping[str, MethodSpec] = methods if methods is not None else {}
        self.rpc = RpcRegistry()
        """The app's JSON-RPC methods; layers add theirs before :meth:`start`."""
        self.rpc_server: RpcServer | None = None
        self._init_waiters: list[Callable[[int], object]] = []
        self.rc = 0
        self.framework: ReactorFramework | None = None
        self.app_thread: Thread | None = None
        self.core_mask = CpuSet()
        self.main_core = 0
        self._config: JsonConfig | None = None
        self._start_fn: Callable[[], object] | None = None
        self.shutdown_cb: Callable[[], object] | None = None
        self._stop_requested = False
        self._signals_seen = 0
        self._watchdog: threading.Timer | None = None
        self._old_handlers: dict[int, object] = {}
        self._wakeup_pipe: tuple[int, int] | None = None
        self._old_wakeup_fd = -1
        self._locks: CoreLocks | None = None
        if self.subsystems.get("scheduler") is None:
            self.subsystems.register(
                Subsystem(
                    "scheduler",
                    init=self._scheduler_init,
                    fini=self._scheduler_fini,
                    write_config_json=self._scheduler_config,
                )
            )

    # ------------------------------------------------------------------ start

    def start(
        self,
        start_fn: Callable[[], object],
        shutdown_cb: Callable[[], object] | None = None,
    ) -> int:
        """Run the app (``spdk_app_start``): ``start_fn()`` runs on the app thread once the
        subsystems are up. Returns the exit code given to :meth:`stop` (0 on a clean stop).
        """
        global _app
        opts = self.opts
        if not opts.name:
            raise ConfigError("the app needs a name")
        if opts.delay_subsystem_init and opts.rpc_addr is None:
            raise ConfigError("--wait-for-rpc needs the RPC server (do not use --no-rpc-server)")
        setup_logging(NOTICE if opts.print_level == "NOTICE" else logging.WARNING)
        set_log_level(NOTICE)  # SPEC §6.3 step 3 (SPDK's syslog level; reported by log_get_level)
        for flag in opts.log_flags:
            try:
                set_log_flag(flag)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        # Deviation 2: the mask is checked against the cores we may run on before anything starts.
        available = available_cores()
        # Only an absent mask means the default: an empty -m "" is an error, not 0x1.
        mask_text = opts.reactor_mask if opts.reactor_mask is not None else "0x1"
        self.core_mask = parse_app_mask(mask_text, available)
        self.main_core = (
            parse_main_core(opts.main_core, self.core_mask, mask_text)
            if opts.main_core is not None
            else self.core_mask.first()
        )
        if opts.interrupt_mode and opts.busy_poll:
            raise ConfigError("--busy-poll and --interrupt-mode cannot be used together")
        if opts.scheduler is not None and opts.scheduler not in scheduler_names():
            raise ConfigError(
                f"unknown scheduler {opts.scheduler!r} (choose from {', '.join(scheduler_names())})"
            )
        config = JsonConfig.from_file(opts.json_config_file) if opts.json_config_file else None
        if _app is not None:
            raise InvalidStateError("another App is already running in this process")
        if opts.busy_poll and not opts.disable_cpumask_locks:
            self._locks = CoreLocks.claim(self.core_mask)
        if opts.rpc_addr is not None:
            self.rpc.allowlist = frozenset(opts.rpcs_allowed) if opts.rpcs_allowed else None
            register_app_methods(self.rpc, self)
            server = RpcServer(opts.rpc_addr, self.rpc)
            try:
                # Claimed before anything starts, so a busy path is one clear line, not a stop.
                server.listen()
            except BaseException:
                if self._locks is not None:
                    self._locks.release()
                    self._locks = None
                raise
            self.rpc_server = server
        _app = self
        try:
            notice(log, "Total cores available: %d", len(self.core_mask))
            self.framework = reactors_init(
                self.core_mask,
                self.main_core,
                msg_mempool_size=opts.msg_mempool_size,
                busy_poll=opts.busy_poll,
                interrupt_mode=opts.interrupt_mode,
                gil_switch_interval_s=opts.gil_switch_interval_us / 1e6,
                slow_work_threshold_us=round(opts.slow_work_threshold_ms * 1000),
            )
            try:
                self.app_thread = Thread("app_thread", CpuSet([self.main_core]))
                self._config = config
                self._start_fn = start_fn
                self.shutdown_cb = shutdown_cb
                self._install_signal_handlers()
                self.app_thread.send_msg(self._bootstrap)
                try:
                    self.framework.start()
                except SpdkpyError as exc:
                    log.error("%s", exc)
                    self.rc = self.rc or 1
            finally:
                # Handlers first: a signal landing after the watchdog is cancelled would arm a
                # new one that nothing cancels.
                self._restore_signal_handlers()
                self._cancel_watchdog()
                if self.rpc_server is not None:
                    self.rpc_server.close()  # idempotent: normally closed in _fini_done
                reactors_fini()
        finally:
            if self._locks is not None:
                self._locks.release()
                self._locks = None
            _app = None
        return self.rc

    # ------------------------------------------------------------------ scheduler subsystem

    def _scheduler_init(self, done: Callable[[int], None]) -> None:
        # SPDK's scheduler subsystem picks static when nothing (config, RPC) has chosen one;
        # spdkpy's --scheduler chooses first.
        assert self.framework is not None
        scheduling = self.framework.scheduling
        opts = self.opts
        rc = 0
        if opts.scheduler is not None:
            if opts.scheduler_period_us is not None:
                scheduling.set_period(opts.scheduler_period_us)
            elif scheduling.period_us == 0:
                scheduling.set_period(DEFAULT_SCHEDULER_PERIOD_US)
            rc = scheduling.set(opts.scheduler)
            if rc:
                log.error("cannot start the %s scheduler: %s", opts.scheduler, os.strerror(-rc))
        elif scheduling.current is None:
            rc = scheduling.set("static")
        done(rc)

    def _scheduler_fini(self, done: Callable[[], None]) -> None:
        if self.framework is not None:
            self.framework.scheduling.set_period(0)
            self.framework.scheduling.set(None)
        done()

    def _scheduler_config(self) -> list[dict[str, object]] | None:
        if self.framework is None or self.framework.scheduling.current is None:
            return None
        scheduling = self.framework.scheduling
        current = scheduling.current
        assert current is not None
        params: dict[str, object] = {"name": current.name}
        if scheduling.period_us:
            params["period"] = scheduling.period_us
        params.update(current.get_opts())
        return [{"method": "framework_set_scheduler", "params": params}]

    # ------------------------------------------------------------------ bootstrap (app thread)

    def _bootstrap(self) -> None:
        if self._config is not None:
            try:
                self._replay(RpcState.STARTUP)
            except ConfigError as exc:
                log.error("%s", exc)
                self.stop(-exc.errno)
                return
        server = self.rpc_server
        if server is not None:
            try:
                server.start()
            except ConfigError as exc:
                log.error("%s", exc)
                self.stop(-exc.errno)
                return
            if self.opts.delay_subsystem_init:
                notice(log, "Waiting for the framework_start_init RPC (--wait-for-rpc)")
                return
            server.pause()  # neither accept nor serve while the subsystems initialise
        self.subsystems.init(self._init_done)

    def start_init(self, done: Callable[[int], object]) -> None:
        """Initialise the subsystems now (``framework_start_init``); ``done(rc)`` follows init,
        the RUNTIME config and ``start_fn``. On the app thread, in the STARTUP state only.
        """
        if self.rpc.state is not RpcState.STARTUP:
            raise InvalidStateError("the framework is already initialised")
        self._init_waiters.append(done)
        if self.rpc_server is not None:
            self.rpc_server.pause()
        self.subsystems.init(self._init_done)

    def wait_init(self, done: Callable[[int], object]) -> None:
        """``done(0)`` once the RPC state is RUNTIME (at once if it is already)."""
        if self.rpc.state is RpcState.RUNTIME:
            done(0)
        else:
            self._init_waiters.append(done)

    def _init_done(self, rc: int) -> None:
        waiters, self._init_waiters = self._init_waiters, []
        if rc:
            log.error("Subsystem initialization failed with code %d", rc)
            if self.rpc_server is not None:
                self.rpc_server.resume()
            for waiter in waiters:
                waiter(rc)
            self.stop(rc)
            return
        self.rpc.state = RpcState.RUNTIME
        if self._config is not None:
            try:
                self._replay(RpcState.RUNTIME)
            except ConfigError as exc:
                log.error("%s", exc)
                for waiter in waiters:
                    waiter(-exc.errno)
                self.stop(-exc.errno)
                return
        if self.rpc_server is not None:
            self.rpc_server.resume()
        for waiter in waiters:
            waiter(0)
        start_fn = self._start_fn
        if start_fn is not None:
            start_fn()

    def _replay(self, state: RpcState) -> None:
        assert self._config is not None
        replay_config(
            self._config,
            state,
            {**methods_from_registry(self.rpc), **self.methods},
            {s.name for s in self.subsystems.registered},
            ignore_errors=self.opts.json_config_ignore_errors,
        )

    # ------------------------------------------------------------------ stop

    def stop(self, rc: int = 0) -> None:
        """Stop the app (``spdk_app_stop``), from any OS thread; the first non-zero ``rc`` is the
        exit code. Subsystems are torn down in reverse, then the reactors stop.
        """
        thread = self.app_thread
        if thread is None:
            raise InvalidStateError("the app is not running")
        try:
            thread.send_msg(self._app_stop, rc)
        except ThreadExitedError:
            log.info("app stop requested after the app thread exited")

    def _app_stop(self, rc: int) -> None:
        if rc:
            log.warning("spdk_app_stop'd on non-zero (%d)", rc)
            if not self.rc:
                # SPDK passes -errno codes; a process exit code must be 1..255.
                self.rc = rc if 0 < rc < 256 else 1
        if self._stop_requested:
            log.info("spdk_app_stop called twice")
            return
        self._stop_requested = True
        self.subsystems.fini(self._fini_done)

    def _fini_done(self) -> None:
        if self.rpc_server is not None:
            self.rpc_server.close()  # spdk_rpc_finish: closes clients, removes socket and lock
        framework = self.framework
        assert framework is not None
        framework.stop()

    def start_shutdown(self) -> None:
        """Begin a graceful shutdown (``spdk_app_start_shutdown``); safe from a signal handler."""
        thread = self.app_thread
        if thread is None:
            return
        self._arm_watchdog()
        # The critical slot allocates nothing; if another critical message holds it, queue
        # the shutdown as an ordinary message instead (refused only once the thread exited).
        if not thread.try_send_critical_msg(self._shutdown):
            thread.try_send_msg(self._shutdown)

    def _shutdown(self) -> None:
        cb = self.shutdown_cb
        if cb is not None:
            self.shutdown_cb = None  # called once only
            cb()
        else:
            self.stop(0)

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> None:
        if self.opts.disable_signal_handlers:
            return
        if threading.current_thread() is not threading.main_thread():
            log.info("not on the main thread: no signal handlers installed")
            return
        self._old_handlers[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)
        # The C-level handler writes this pipe, which wakes the main reactor from epoll even when
        # the kernel delivered the signal to another OS thread; the Python handler then runs.
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup_pipe = (r, w)
        self._old_wakeup_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        assert self.framework is not None
        self.framework.reactor(self.main_core).add_wake_fd(r, _drain)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._old_handlers.clear()
        if self._wakeup_pipe is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
            for fd in self._wakeup_pipe:
                os.close(fd)
            self._wakeup_pipe = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals_seen += 1
        if self._signals_seen > 1:
            _force_exit(f"second signal {signal.Signals(signum).name}: forcing the exit now")
        self.start_shutdown()

    # ------------------------------------------------------------------ watchdog

    def _arm_watchdog(self) -> None:
        if self._watchdog is not None or self.opts.shutdown_timeout_s <= 0:
            return
        timer = threading.Timer(self.opts.shutdown_timeout_s, self._shutdown_timed_out)
        timer.daemon = True
        timer.name = "spdkpy-shutdown-watchdog"
        self._watchdog = timer
        timer.start()

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _shutdown_timed_out(self) -> None:
        framework = self.framework
        lines = [f"shutdown did not finish within {self.opts.shutdown_timeout_s:g} s"]
        if framework is not None:
            for reactor in framework.reactors:
                if reactor is None:
                    continue
                for lw in list(reactor.threads):
                    held = "; ".join(lw.thread.exit_blockers()) or "nothing reported"
                    lines.append(
                        f"  thread {lw.thread.name} on core {reactor.lcore} "
                        f"({lw.thread.state.value}): {held}"
                    )
        _force_exit("\n".join(lines))


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _force_exit(message: str) -> None:
    log.error("%s", message)
    sys.stderr.flush()
    os._exit(_FORCED_EXIT_CODE)


_app: App | None = None


def get_app() -> App:
    """The running app, or :class:`InvalidStateError`."""
    app = _app
    if app is None:
        raise InvalidStateError("no app is running")
    return app


def app_stop(rc: int = 0) -> None:
    """``spdk_app_stop``: stop the running app from any thread."""
    get_app().stop(rc)


def app_start_shutdown() -> None:
    """``spdk_app_start_shutdown``: what SIGINT does, for apps without signal handlers."""
    get_app().start_shutdown()
