%% @doc The package's arm64 library, loaded and used by an arm64 Erlang: Debian 12's arm64
%% erlang-nox (OTP 25) run under qemu-user-static on this (x86_64) machine.
%%
%% The arm64 root is made by `scripts/arm64_root.sh' (the Makefile's `arm64-root' target) and
%% named by EMQX_GUARD_ARM64_ROOT; `make test' and `make test-arm64' set it. Without it the suite
%% is skipped (a plain `rebar3 ct'). The package is installed as EMQX does (unpacked, written file
%% by file), the arm64 node gets only OTP and the package's ebin on its code path, and calls
%% validate/1, next_fires/4 and a verification job (verify_async/2, on a thread of its own) on
%% the real EMQX 5.3.2 export; its answers must be the known ones and the same as this node's
%% x86_64 library gives.
%%
%% How the arm64 BEAM is run without binfmt_misc: beam.smp is started through
%% qemu-aarch64-static -L ROOT, and BINDIR points at a directory of small scripts that start the
%% helper programs BEAM execs (erl_child_setup, inet_gethost, ...) the same way. OTP 25's arm64
%% JIT maps its code twice (writable and executable), which qemu-user does not follow; `-JPperf
%% map' makes OTP 25 use single-mapped JIT memory (OTP 26+ has `+JMsingle true' for this). It writes
%% /tmp/perf-<pid>.map, removed afterwards.
-module(emqx_guard_arm64_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([arm64_node_uses_the_arm64_library/1]).
%% Evaluated in the arm64 node.
-export([probe/2]).

-define(FIXTURE, filename:join([filename:dirname(?FILE), "fixtures", "emqx-5.3.2",
                                "emqx-export-2026-11-27-18-58-45.951.tar.gz"])).
-define(CRON, <<"  0   12 *\t* * ">>).
-define(ZONE, <<"Europe/Berlin">>).
-define(TIMEOUT_MS, 300000).

-spec all() -> [atom()].
all() ->
    [arm64_node_uses_the_arm64_library].

-spec init_per_suite(list()) -> list() | {skip, string()}.
init_per_suite(Config) ->
    Root = os:getenv("EMQX_GUARD_ARM64_ROOT", ""),
    Qemu = os:find_executable("qemu-aarch64-static"),
    Erts = filelib:wildcard(filename:join([Root, "usr", "lib", "erlang", "erts-*"])),
    if
        Root =:= "" ->
            {skip, "EMQX_GUARD_ARM64_ROOT not set (make test and make test-arm64 set it)"};
        Qemu =:= false ->
            ct:fail("qemu-aarch64-static not installed (scripts/arm64_root.sh installs it)");
        Erts =:= [] ->
            ct:fail("no arm64 Erlang in ~ts: run scripts/arm64_root.sh ~ts", [Root, Root]);
        true ->
            [{root, Root}, {qemu, Qemu}, {erts, hd(Erts)} | Config]
    end.

-spec end_per_suite(list()) -> ok.
end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------

-spec arm64_node_uses_the_arm64_library(list()) -> ok.
arm64_node_uses_the_arm64_library(Config) ->
    PrivDir = ?config(priv_dir, Config),
    Ebin = install_package(package_path(), filename:join(PrivDir, "plugins")),
    %% this module, for probe/2, compiled by this (x86_64) node: beams are portable
    ProbeEbin = filename:join(PrivDir, "probe"),
    ok = filelib:ensure_dir(filename:join(ProbeEbin, "x")),
    {ok, _} = file:copy(code:which(?MODULE), filename:join(ProbeEbin, atom_to_list(?MODULE) ++ ".beam")),
    Fixture = filename:join(PrivDir, filename:basename(?FIXTURE)),
    {ok, _} = file:copy(?FIXTURE, Fixture),
    Out = filename:join(PrivDir, "arm64-answers.bin"),
    After = ms("2026-01-01T00:00:00Z"),
    Eval = lists:flatten(io_lib:format("~p:probe(~p, ~p), halt(0).", [?MODULE, Fixture, Out])),
    {Status, Output} = run_arm64(Config, ["-pa", Ebin, "-pa", ProbeEbin, "-noshell", "-eval", Eval]),
    ct:pal("arm64 node: exit ~p~n~ts", [Status, Output]),
    ?assertEqual(0, Status),
    {ok, Bin} = file:read_file(Out),
    Answers = binary_to_term(Bin),
    ct:pal("arm64 answers: ~p", [Answers]),
    #{arch := Arch, library := Library} = Answers,
    ?assertMatch("aarch64" ++ _, Arch),
    ?assertEqual(filename:join([filename:dirname(Ebin), "priv", "aarch64", "emqx_guard_nif.so"]), Library),
    %% the known answers
    ?assertEqual({ok, <<"0 12 * * *">>}, maps:get(validate, Answers)),
    ?assertEqual(
        {ok, [ms("2026-01-01T11:00:00Z"), ms("2026-01-02T11:00:00Z"), ms("2026-01-03T11:00:00Z")]},
        maps:get(next_fires, Answers)
    ),
    {ok, FixtureBin} = file:read_file(Fixture),
    Sha = string:lowercase(binary:encode_hex(crypto:hash(sha256, FixtureBin))),
    ?assertMatch(
        {ok, #{entries := 9, version := <<"5.3.2">>, edition := <<"ce">>, sha256 := Sha}},
        maps:get(verify, Answers)
    ),
    %% ... and the same as the x86_64 library answers here, also for 200 fire times (dirty
    %% scheduler) and a broken tarball
    ?assertEqual(maps:remove(arch, maps:remove(library, probe_answers(Fixture, After))),
                 maps:remove(arch, maps:remove(library, Answers))),
    ok.

%%--------------------------------------------------------------------
%% Run inside the arm64 node (and here, for the x86_64 answers).

-spec probe(file:filename(), file:filename()) -> ok.
probe(Fixture, Out) ->
    Answers = probe_answers(Fixture, ms("2026-01-01T00:00:00Z")),
    ok = file:write_file(Out, term_to_binary(Answers)).

probe_answers(Fixture, After) ->
    Truncated = Fixture ++ ".cut.tar.gz",
    {ok, Bin} = file:read_file(Fixture),
    ok = file:write_file(Truncated, binary:part(Bin, 0, byte_size(Bin) div 2)),
    #{
        arch => erlang:system_info(system_architecture),
        library => emqx_guard_nif:library_path(),
        validate => emqx_guard_nif:validate(?CRON),
        next_fires => emqx_guard_nif:next_fires(<<"0 12 * * *">>, ?ZONE, After, 3),
        many_fires => emqx_guard_nif:next_fires(<<"*/7 9-17 * * mon-fri">>, ?ZONE, After, 200),
        verify => verdict(Fixture),
        verify_truncated => element(1, verdict(Truncated)),
        describe => emqx_guard_nif:describe(<<"0 12 * * 0">>)
    }.

%%--------------------------------------------------------------------
%% helpers

%% The verdict of a verification job (verify_async/2, as the plugin runs it) on Path: the
%% record's content keys when it verifies (its identity and time differ from node to node),
%% else the error.
verdict(Path) ->
    case emqx_guard_backups:check(Path, off, 60000) of
        {ok, #{result := ok} = Record} -> {ok, maps:with([entries, bytes, version, edition, sha256], Record)};
        {ok, #{result := Error}} -> Error;
        {error, _} = Error -> Error
    end.

%% beam.smp of the arm64 root under qemu, with BINDIR holding wrappers for its helper programs.
run_arm64(Config, Args) ->
    Root = ?config(root, Config),
    Qemu = ?config(qemu, Config),
    Erts = ?config(erts, Config),
    OtpRoot = filename:join([Root, "usr", "lib", "erlang"]),
    Wrap = filename:join(?config(priv_dir, Config), "arm64-bin"),
    ok = filelib:ensure_dir(filename:join(Wrap, "x")),
    lists:foreach(
        fun(Prog) ->
            W = filename:join(Wrap, filename:basename(Prog)),
            ok = file:write_file(W, io_lib:format("#!/bin/sh\nexec '~ts' -L '~ts' '~ts' \"$@\"\n", [Qemu, Root, Prog])),
            ok = file:change_mode(W, 8#755)
        end,
        filelib:wildcard(filename:join([Erts, "bin", "*"]))
    ),
    Env = [
        {"BINDIR", Wrap}, {"ROOTDIR", OtpRoot}, {"EMU", "beam"}, {"PROGNAME", "erl"},
        {"HOME", ?config(priv_dir, Config)},
        {"ERL_CRASH_DUMP", filename:join(?config(priv_dir, Config), "arm64_erl_crash.dump")},
        {"ERL_LIBS", false}, {"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}
    ],
    Port = open_port(
        {spawn_executable, Qemu},
        [
            {args, ["-L", Root, filename:join([Erts, "bin", "beam.smp"]), "-JPperf", "map", "--",
                    "-root", OtpRoot, "-bindir", Wrap, "-progname", "erl", "--",
                    "-home", ?config(priv_dir, Config) | Args]},
            {env, Env}, exit_status, stderr_to_stdout, binary
        ]
    ),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    try
        collect(Port, [])
    after
        [file:delete(F) || F <- [lists:flatten(io_lib:format("/tmp/perf-~b.map", [OsPid])),
                                 filename:join(Root, io_lib:format("tmp/perf-~b.map", [OsPid]))]]
    end.

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc]);
        {Port, {exit_status, S}} -> {S, iolist_to_binary(lists:reverse(Acc))}
    after ?TIMEOUT_MS ->
        catch_close(Port),
        ct:fail("the arm64 node did not finish in ~b s: ~ts", [?TIMEOUT_MS div 1000, lists:reverse(Acc)])
    end.

catch_close(Port) ->
    try port_close(Port) catch error:_ -> ok end.

%% As EMQX's installer: erl_tar in memory, every file written with file:write_file. The ebin.
install_package(Package, Dir) ->
    {ok, Files} = erl_tar:extract(Package, [memory, compressed]),
    lists:foreach(
        fun({N, B}) ->
            ok = filelib:ensure_dir(filename:join(Dir, N)),
            ok = file:write_file(filename:join(Dir, N), B)
        end,
        Files
    ),
    [App] = lists:usort([
        filename:join([Dir, Top, A])
     || {N, _} <- Files, [Top, A, "ebin", "emqx_guard.app"] <- [filename:split(N)]
    ]),
    filename:join(App, "ebin").

package_path() ->
    case os:getenv("EMQX_GUARD_PACKAGE") of
        P when P =:= false; P =:= "" -> ct:fail("EMQX_GUARD_PACKAGE not set (make test-arm64 sets it)");
        P -> P
    end.

ms(Rfc3339) ->
    calendar:rfc3339_to_system_time(Rfc3339, [{unit, millisecond}]).
