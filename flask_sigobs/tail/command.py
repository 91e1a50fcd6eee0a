"""``sigobs tail``: wires the options to a source loop and a sink, and ends well.

Ending well is part of the job: a closed pipe (``| head``) ends quietly, Ctrl-C ends without a
traceback (and, grouping by request, first shows the requests still open), a file that cannot
be read is reported and the others are still read.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from .clock import Clock
from .options import Settings, settings
from .output import Output, silence_stdout
from .parallel import Slice, worth_it
from .reader import FileSource, Source, StreamSource, open_sources, wait_readable
from .render import Renderer
from .requestsink import RequestSink
from .sinks import LineSink, StatsSink
from .terminal import Palette, use_colour


def run(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    """Run ``sigobs tail`` with parsed arguments; the exit status."""
    config = settings(args, parser)
    out = Output()
    colour = use_colour(config.color, sys.stdout)
    renderer = Renderer(Palette(colour), Clock(utc=config.utc), fields=config.fields,
                        verbose=config.verbose, jaeger=config.jaeger)
    sources: list[Source] = []
    sink: LineSink | RequestSink | StatsSink | None = None
    note = "input ended before its access line"
    try:
        sources = open_sources(config.files, follow=config.follow, last=config.last, notice=out.notice)
        sink = _sink(config, out, renderer, colour, parallel=not config.follow and worth_it(_backlog(sources)))
        _loop(config, sources, sink, out)
        sink.finish(note)
        out.flush()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends at once, silently
        try:
            if sink is not None:
                sink.interrupt()
            out.flush()
        except (BrokenPipeError, KeyboardInterrupt):
            silence_stdout()
        return 130
    except BrokenPipeError:
        silence_stdout()
        return 0
    finally:
        if sink is not None:
            sink.close()
        for source in sources:
            source.close()
    failed = [s for s in sources if isinstance(s, FileSource) and s.error]
    for source in failed:
        out.notice(source.error or "")
    return 1 if failed else 0


def _backlog(sources: list[Source]) -> int:
    """Bytes waiting in regular files (0 when any source is a pipe: its size is unknown)."""
    total = 0
    for source in sources:
        if not isinstance(source, FileSource):
            return 0
        total += source.backlog()
    return total


def _sink(config: Settings, out: Output, renderer: Renderer, colour: bool,
          parallel: bool = False) -> LineSink | RequestSink | StatsSink:
    if config.stats:
        return StatsSink(out, renderer, config.filters, live=config.follow, interval=config.interval,
                         clear=colour and sys.stdout.isatty(), clock_now=time.monotonic)
    if config.grouped:
        return RequestSink(out, renderer, config.filters, json=config.json, hide_raw=config.hide_raw,
                           errors_only=config.errors, blocks=config.by_request,
                           timeout=config.request_timeout, max_open=config.max_open, parallel=parallel)
    return LineSink(out, renderer, config.filters, json=config.json, hide_raw=config.hide_raw,
                    parallel=parallel)


def _loop(config: Settings, sources: list[Source], sink: LineSink | RequestSink | StatsSink, out: Output) -> None:
    """Read every source until all are done (never, when following files)."""
    streams = [s for s in sources if isinstance(s, StreamSource)]
    flush_each = config.follow or bool(streams)
    monotonic = time.monotonic
    if isinstance(sink, LineSink) and sink.pool is not None and not streams and not config.follow:
        for source in sources:  # workers read the blocks themselves; here only where they lie
            if isinstance(source, FileSource):
                while (piece := source.read_slice()) is not None:
                    sink.feed_slice(Slice(*piece))
        return
    slicing = isinstance(sink, RequestSink) and sink.pool is not None and not streams and not config.follow
    while True:
        got = False
        for source in sources:
            if source.done:
                continue
            if isinstance(source, StreamSource) and not source.readable(0):
                continue  # never block on a pipe: ticks (timeouts, live stats) must still run
            if slicing and isinstance(source, FileSource):
                piece = source.read_exact_slice()
                if piece is not None:  # the block read() would give, read by a worker instead
                    got = True
                    sink.feed_slice(Slice(*piece))
                    continue
            block = source.read()
            if block:
                got = True
                sink.feed(block, monotonic())
        if got:
            if flush_each:
                out.flush()
            continue
        if all(source.done for source in sources):
            return
        sink.tick(monotonic())
        out.flush()
        waiting = [s.fd for s in streams if not s.done]
        if waiting and len(waiting) == sum(1 for s in sources if not s.done):
            wait_readable(waiting, config.poll)  # only pipes: wake as soon as one has input
        else:
            time.sleep(config.poll)
