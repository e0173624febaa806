%% @doc The built plugin package, installed and run the way EMQX does it.
%%
%% The package is `_build/plugin/emqx_guard-<vsn>.tar.gz' (`make package'), or the file named by
%% the environment variable EMQX_GUARD_PACKAGE (`make test' sets it). The suite checks its layout,
%% release.json and .sha256, then installs it like EMQX's plugin manager: unpacked in memory with
%% erl_tar and written file by file with file:write_file (modes lost, the NIF a 0644 file), and
%% runs it in a fresh node started with `peer' whose code path holds only OTP, the EMQX stand-ins
%% and the package's ebin: purge + load every beam, application:load, ensure_all_started within
%% 10 s, one backup, then 10 stop/start cycles reloading every beam, and after the last stop no
%% process, timer, ETS table or registered command of the plugin is left.
%%
%% The exported helpers below `%% Run inside the peer' are called in the peer node (this module is
%% loaded there too); they are not test cases.
-module(emqx_guard_package_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([
    package_layout/1,
    calls_into_emqx_only_through_the_boundary/1,
    release_json_fields/1,
    sha256_file/1,
    install_start_stop_like_emqx/1
]).
%% Run inside the peer.
-export([
    start_timer_tracer/0,
    start_disk_log/1,
    snapshot/0,
    plugin_processes/0,
    new_processes/1,
    live_plugin_timers/1,
    plugin_ets_tables/1,
    run_cli/1,
    load_beams/1
]).
%% The tiny JSON reader, exported for its own sanity test below.
-export([json_decode/1, json_reader_self_check/1]).

-define(APP, emqx_guard).
-define(START_LIMIT_MS, 10000).
-define(RESTARTS, 10).
-define(PROBE_CRON, <<"0 12 * * 0">>).
%% The architectures the package ships a NIF for (priv/<arch>/emqx_guard_nif.so).
-define(NIF_ARCHS, ["aarch64", "x86_64"]).

-spec all() -> [atom()].
all() ->
    [
        json_reader_self_check,
        package_layout,
        calls_into_emqx_only_through_the_boundary,
        release_json_fields,
        sha256_file,
        install_start_stop_like_emqx
    ].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Root = project_root(),
    Vsn = app_src_vsn(Root),
    Package = package_path(Root, Vsn),
    ct:pal("package ~ts (~b bytes)", [Package, filelib:file_size(Package)]),
    [{root, Root}, {vsn, Vsn}, {package, Package} | Config].

-spec end_per_suite(list()) -> ok.
end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------
%% Package contents

%% @doc One top directory `emqx_guard-<vsn>/' with release.json, README.md and one app directory
%% `emqx_guard-<appvsn>/' holding ebin/ (every module of the .app, nothing else) and priv/ (the
%% NIF, the plugin config files and the page `ui.html'); only plain files and directories, sorted,
%% nothing outside; within EMQX 6.3's size limits.
-spec package_layout(list()) -> ok.
package_layout(Config) ->
    Vsn = ?config(vsn, Config),
    Files = files(Config),
    {ok, Table} = erl_tar:table({binary, package_bin(Config)}, [compressed, verbose]),
    Top = "emqx_guard-" ++ Vsn,
    %% only plain files and directories: no symlink, hard link or device
    ?assertEqual([], [{N, T} || {N, T, _, _, _, _, _} <- Table, T =/= regular, T =/= directory]),
    %% everything under the top directory, relative, no ".."
    Names = [N || {N, _, _, _, _, _, _} <- Table],
    Outside = [
        N
     || N <- Names,
        hd(filename:split(N)) =/= Top orelse filename:pathtype(N) =/= relative orelse
            lists:member("..", filename:split(N))
    ],
    ?assertEqual([], Outside),
    %% deterministic order: sorted by name within each directory (directory before its contents)
    ?assertEqual(lists:sort([filename:split(N) || N <- Names]), [filename:split(N) || N <- Names]),
    Rel = [{tl(filename:split(N)), Bin} || {N, Bin} <- Files],
    TopLevel = lists:usort([hd(P) || {P, _} <- Rel]),
    AppVsn = packaged_app_vsn(Config),
    AppDir = "emqx_guard-" ++ AppVsn,
    ?assertEqual(lists:sort(["release.json", "README.md", AppDir]), TopLevel),
    {_, Readme} = lists:keyfind(["README.md"], 1, Rel),
    ?assertMatch({match, _}, re:run(Readme, "emqx ctl plugins install")),
    %% ebin: the .app and exactly the beams of its modules, each beam holding the module it is named after
    {ok, Tokens, _} = erl_scan:string(binary_to_list(file_in(Rel, [AppDir, "ebin", "emqx_guard.app"]))),
    {ok, {application, ?APP, Props}} = erl_parse:parse_term(Tokens),
    Modules = proplists:get_value(modules, Props),
    ?assert(lists:member(emqx_guard_nif, Modules)),
    ?assert(lists:member(emqx_guard_app, Modules)),
    Ebin = lists:sort([F || {[D, "ebin", F], _} <- Rel, D =:= AppDir]),
    ?assertEqual(
        lists:sort(["emqx_guard.app" | [atom_to_list(M) ++ ".beam" || M <- Modules]]), Ebin
    ),
    [
        ?assertMatch({ok, {M, _}}, beam_lib:chunks(file_in(Rel, [AppDir, "ebin", atom_to_list(M) ++ ".beam"]), [exports]))
     || M <- Modules
    ],
    %% priv: the NIF for each architecture (an ELF shared object in priv/<arch>/) and the plugin
    %% config files EMQX 5.7+ reads
    Priv = lists:sort([filename:join(F) || {[D, "priv" | F], _} <- Rel, D =:= AppDir]),
    ct:pal("priv: ~p", [Priv]),
    Nifs = [filename:join(A, "emqx_guard_nif.so") || A <- ?NIF_ARCHS],
    Required = ["config.hocon", "config_i18n.json", "config_schema.avsc", "ui.html" | Nifs],
    ?assertEqual([], Required -- Priv),
    %% the plugin's page (EMQX 6.1.1+, release.json `index'): one self-contained HTML file that
    %% calls only relative paths (no other host, no CDN)
    Page = file_in(Rel, [AppDir, "priv", "ui.html"]),
    ?assertMatch({match, _}, re:run(Page, "^<!doctype html>", [caseless])),
    ?assertMatch({_, _}, binary:match(Page, <<"Back up now">>)),
    ?assertEqual(nomatch, binary:match(Page, [<<"http://">>, <<"https://">>, <<"src=\"//">>, <<"/api/v5">>])),
    %% within EMQX 6.3's limits: 10 MB packed, 50 MB unpacked
    Packed = byte_size(package_bin(Config)),
    Unpacked = lists:sum([byte_size(B) || {_, B} <- Files]),
    ct:pal("package: ~B bytes packed, ~B unpacked", [Packed, Unpacked]),
    ?assert(Packed < 10000000, Packed),
    ?assert(Unpacked < 50000000, Unpacked),
    [?assertMatch(<<16#7f, "ELF", _/binary>>, file_in(Rel, [AppDir, "priv" | filename:split(N)])) || N <- Nifs],
    ?assertMatch(#{}, json_decode(file_in(Rel, [AppDir, "priv", "config_i18n.json"]))),
    ?assertMatch(#{<<"type">> := _}, json_decode(file_in(Rel, [AppDir, "priv", "config_schema.avsc"]))),
    %% nothing else anywhere
    Known = [["release.json"], ["README.md"]] ++ [[AppDir, "ebin", F] || F <- Ebin] ++
        [[AppDir, "priv" | filename:split(F)] || F <- Priv],
    ?assertEqual([], [P || {P, _} <- Rel] -- Known),
    ok.

%% @doc The packaged code calls EMQX (modules `emqx', `emqx_*' other than ours, `mria*', `ekka*',
%% and prometheus.erl's `prometheus*', part of EMQX's release) only from emqx_guard_emqx, the one
%% module that checks what the running EMQX has; every other
%% call goes to the package itself or to an OTP application EMQX ships (no test-only module,
%% no library missing from the package).
-spec calls_into_emqx_only_through_the_boundary(list()) -> ok.
calls_into_emqx_only_through_the_boundary(Config) ->
    Beams = [{N, B} || {N, B} <- files(Config), filename:extension(N) =:= ".beam"],
    Imports = lists:usort([
        {M, I}
     || {_, B} <- Beams,
        {ok, {M, [{imports, Is}]}} <- [beam_lib:chunks(B, [imports])],
        {I, _, _} <- Is
    ]),
    Own = lists:usort([M || {M, _} <- Imports]),
    %% the door: `emqx_guard_emqx', alone (every role module, the restore's and the companion's
    %% included, goes through it)
    Door = [emqx_guard_emqx],
    ?assertEqual(Door, [M || M <- Door, lists:member(M, Own)]),
    ?assertEqual([], [{M, I} || {M, I} <- Imports, emqx_module(I), not lists:member(M, Door)]),
    OtpLib = code:lib_dir(),
    TestApps = [D || A <- [common_test, eunit], D <- [code:lib_dir(A)], is_list(D)],
    Foreign = [
        {M, I}
     || {M, I} <- Imports,
        not emqx_module(I),
        not lists:member(I, Own),
        not is_otp_module(I, OtpLib, TestApps)
    ],
    ?assertEqual([], Foreign),
    ok.

emqx_module(emqx) -> true;
emqx_module(M) ->
    Name = atom_to_list(M),
    (lists:prefix("emqx_", Name) andalso not lists:prefix("emqx_guard", Name)) orelse
        lists:prefix("mria", Name) orelse lists:prefix("ekka", Name) orelse lists:prefix("prometheus", Name).

is_otp_module(M, OtpLib, TestApps) ->
    case code:which(M) of
        preloaded -> true;
        Path when is_list(Path) ->
            lists:prefix(OtpLib, Path) andalso not lists:any(fun(D) -> lists:prefix(D, Path) end, TestApps);
        _ -> false
    end.

%% @doc release.json carries every field the EMQX dashboard shows, with the right types.
-spec release_json_fields(list()) -> ok.
release_json_fields(Config) ->
    Vsn = list_to_binary(?config(vsn, Config)),
    AppVsn = list_to_binary(packaged_app_vsn(Config)),
    Rel = [{tl(filename:split(N)), Bin} || {N, Bin} <- files(Config)],
    Info = json_decode(file_in(Rel, ["release.json"])),
    ct:pal("release.json: ~p", [Info]),
    ?assertMatch(
        #{
            <<"name">> := <<"emqx_guard">>,
            <<"rel_vsn">> := Vsn,
            <<"metadata_vsn">> := <<"0.2.0">>,
            %% the page EMQX 6.1.1+ shows in the dashboard (5.x reads only the keys it knows)
            <<"index">> := <<"/ui">>,
            <<"compatibility">> := #{
                <<"emqx">> := <<">= 5.1.0">>,
                <<"os">> := <<"linux">>,
                <<"glibc">> := <<">= 2.17">>
            }
        },
        Info
    ),
    %% the architectures named are those with a library in the package
    Shipped = lists:usort([A || {[_, "priv", A, "emqx_guard_nif.so"], _} <- Rel]),
    ?assertEqual(?NIF_ARCHS, Shipped),
    #{<<"compatibility">> := #{<<"arch">> := ArchText}} = Info,
    ?assertEqual(Shipped, lists:sort(string:lexemes(binary_to_list(ArchText), ", "))),
    ?assertEqual([<<"emqx_guard-", AppVsn/binary>>], maps:get(<<"rel_apps">>, Info)),
    %% EMQX splits NAME-VSN at the first "-"
    ?assertEqual(nomatch, binary:match(maps:get(<<"name">>, Info), <<"-">>)),
    %% one string each (the dashboard shows them as text), not empty
    [
        ?assert(is_binary(maps:get(K, Info)) andalso byte_size(maps:get(K, Info)) > 0)
     || K <- [<<"description">>, <<"authors">>, <<"repo">>, <<"functionality">>, <<"git_ref">>]
    ],
    Builder = maps:get(<<"builder">>, Info),
    [?assert(is_binary(maps:get(K, Builder))) || K <- [<<"name">>, <<"contact">>, <<"website">>]],
    %% a commit id, or "unknown" when built outside git
    GitRef = maps:get(<<"git_ref">>, Info),
    ?assert(GitRef =:= <<"unknown">> orelse re:run(GitRef, "^[0-9a-f]{40}$") =/= nomatch),
    ?assertMatch(
        {match, _}, re:run(maps:get(<<"git_commit_or_build_date">>, Info), "^\\d{4}-\\d{2}-\\d{2}$")
    ),
    %% the OTP the package was built on (not the one running this test: a compatibility run tests
    %% the package on a newer OTP), as the build recorded it next to the package, whose compiler
    %% is the one the packaged beams were compiled with
    {ok, BuildInfo} = file:consult(filename:join(filename:dirname(?config(package, Config)), "build_info.eterm")),
    {otp_release, BuiltOn} = lists:keyfind(otp_release, 1, BuildInfo),
    {compiler_vsn, BuildCompiler} = lists:keyfind(compiler_vsn, 1, BuildInfo),
    ?assertEqual(list_to_binary(BuiltOn), maps:get(<<"built_on_otp_release">>, Info)),
    BeamCompilers = lists:usort([
        proplists:get_value(version, CInfo)
     || {N, B} <- files(Config),
        filename:extension(N) =:= ".beam",
        {ok, {_, [{compile_info, CInfo}]}} <- [beam_lib:chunks(B, [compile_info])]
    ]),
    ?assertEqual([BuildCompiler], BeamCompilers),
    HasSchema = lists:keymember(
        [binary_to_list(<<"emqx_guard-", AppVsn/binary>>), "priv", "config_schema.avsc"], 1, Rel
    ),
    ?assertEqual(HasSchema, maps:get(<<"with_config_schema">>, Info)),
    ok.

%% @doc The .sha256 file holds exactly the lowercase hex SHA-256 of the tarball (as emqx_plugrel).
-spec sha256_file(list()) -> ok.
sha256_file(Config) ->
    {ok, Sha} = file:read_file(?config(package, Config) ++ ".sha256"),
    Expected = list_to_binary(
        [io_lib:format("~2.16.0b", [B]) || <<B>> <= crypto:hash(sha256, package_bin(Config))]
    ),
    ?assertEqual(Expected, Sha),
    ok.

%%--------------------------------------------------------------------
%% Install and run, as EMQX does

-spec install_start_stop_like_emqx(list()) -> ok.
install_start_stop_like_emqx(Config) ->
    Vsn = ?config(vsn, Config),
    AppVsn = packaged_app_vsn(Config),
    PrivDir = ?config(priv_dir, Config),
    PluginsDir = filename:join(PrivDir, "plugins"),
    DataDir = filename:join(PrivDir, "data"),
    ok = filelib:ensure_dir(filename:join(DataDir, "x")),
    install(package_bin(Config), PluginsDir),
    AppDir = filename:join([PluginsDir, "emqx_guard-" ++ Vsn, "emqx_guard-" ++ AppVsn]),
    Ebin = filename:join(AppDir, "ebin"),
    %% each NIF is a plain 0644 file, as EMQX leaves it
    lists:foreach(
        fun(Arch) ->
            {ok, #file_info{type = regular, mode = NifMode}} =
                file:read_link_info(filename:join([AppDir, "priv", Arch, "emqx_guard_nif.so"])),
            ?assertEqual(0, NifMode band 8#111)
        end,
        ?NIF_ARCHS
    ),

    StandinDir = filename:dirname(code:which(emqx_ctl)),
    Beams = lists:sort(filelib:wildcard(filename:join(Ebin, "*.beam"))),
    Modules = [list_to_atom(filename:basename(B, ".beam")) || B <- Beams],
    %% the plugin's modules must come only from the package
    ?assertEqual([], [M || M <- Modules, filelib:is_regular(filename:join(StandinDir, atom_to_list(M) ++ ".beam"))]),
    {ok, Peer, _Node} = peer:start_link(#{
        connection => standard_io,
        args => ["-pa", StandinDir],
        env => [{"ERL_LIBS", false}, {"ERL_FLAGS", false}, {"ERL_AFLAGS", false}, {"ERL_ZFLAGS", false}]
    }),
    try
        run_in_peer(Peer, Ebin, Modules, DataDir)
    after
        peer:stop(Peer)
    end.

run_in_peer(Peer, Ebin, Modules, DataDir) ->
    %% no emqx_guard.app anywhere on the fresh node's path: the package brings the only one
    Path = peer:call(Peer, code, get_path, []),
    ?assertEqual([], [D || D <- Path, filelib:is_regular(filename:join(D, "emqx_guard.app"))]),
    ?assertEqual(non_existing, peer:call(Peer, code, which, [emqx_guard_app])),
    {module, ?MODULE} = load_self(Peer),
    %% the stand-ins as they would run in EMQX: long-lived servers, started before the plugin
    ok = peer:call(Peer, emqx, set_data_dir, [DataDir]),
    {ok, _} = peer:call(Peer, emqx_ctl, start, []),
    ok = peer:call(Peer, emqx_alarm, reset, []),
    ok = peer:call(Peer, emqx_mgmt_data_backup, reset, []),
    %% OTP services EMQX always runs (its own listeners, HTTP clients and telemetry use them),
    %% started now so that the plugin using them does not count as leaving them behind
    ok = peer:call(Peer, timer, start, []),
    %% mnesia's log is a disk_log, so EMQX always runs disk_log's servers (the restore's preflight
    %% reads mnesia's backup files with disk_log): a log opened and closed starts them
    ok = peer:call(Peer, ?MODULE, start_disk_log, [filename:join(DataDir, "disk_log_probe")]),
    [{ok, _} = peer:call(Peer, application, ensure_all_started, [A]) || A <- [crypto, ssl, inets]],
    Tracer = peer:call(Peer, ?MODULE, start_timer_tracer, []),
    #{procs := Procs0, ets := Ets0} = peer:call(Peer, ?MODULE, snapshot, []),

    %% first start, one backup
    start_plugin(Peer, Ebin, Modules),
    BackupDir = filename:join(DataDir, "backup"),
    {Ret, Out} = peer:call(Peer, ?MODULE, run_cli, [["guard", "backup_now"]], 60000),
    ct:pal("emqx_ctl guard backup_now -> ~p~n~ts", [Ret, Out]),
    ?assertEqual(ok, Ret),
    [Backup] = wait_for_backup(BackupDir, 600),
    {ok, #file_info{mode = BackupMode}} = file:read_file_info(Backup),
    ?assertEqual(8#600, BackupMode band 8#777),
    stop_plugin(Peer),

    %% stop and start again, every beam purged and reloaded each time, the NIF answering
    lists:foreach(
        fun(_) ->
            start_plugin(Peer, Ebin, Modules),
            stop_plugin(Peer)
        end,
        lists:seq(1, ?RESTARTS)
    ),

    %% nothing of the plugin is left
    ?assertEqual({error, cmd_not_found}, peer:call(Peer, emqx_ctl, lookup_command, [guard])),
    ?assertEqual([], peer:call(Peer, ?MODULE, plugin_processes, [])),
    ?assertEqual([], peer:call(Peer, ?MODULE, new_processes, [Procs0])),
    {Live, Started} = peer:call(Peer, ?MODULE, live_plugin_timers, [Tracer]),
    ct:pal("timers started by plugin code: ~b", [Started]),
    ?assertEqual([], Live),
    ?assertEqual([], peer:call(Peer, ?MODULE, plugin_ets_tables, [Ets0])),
    ?assertEqual(undefined, peer:call(Peer, erlang, whereis, [emqx_guard_sup])),
    ok.

%% What EMQX's plugin manager does on `plugins start': add ebin to the path, purge and load every
%% beam, load the application, ensure_all_started with a 10 s limit.
start_plugin(Peer, Ebin, Modules) ->
    true = peer:call(Peer, code, add_patha, [Ebin]),
    ?assertEqual([{M, {module, M}} || M <- Modules], peer:call(Peer, ?MODULE, load_beams, [Modules])),
    [?assertEqual(filename:join(Ebin, atom_to_list(M) ++ ".beam"), peer:call(Peer, code, which, [M])) || M <- Modules],
    case peer:call(Peer, application, load, [?APP]) of
        ok -> ok;
        {error, {already_loaded, ?APP}} -> ok
    end,
    ?assertMatch({ok, _}, peer:call(Peer, application, ensure_all_started, [?APP], ?START_LIMIT_MS)),
    ?assertEqual({ok, {emqx_guard_cli, cmd}}, peer:call(Peer, emqx_ctl, lookup_command, [guard])),
    ?assertEqual({ok, ?PROBE_CRON}, peer:call(Peer, emqx_guard_nif, validate, [?PROBE_CRON])),
    ok.

%% What EMQX does on `plugins stop'.
stop_plugin(Peer) ->
    ok = peer:call(Peer, application, stop, [?APP]),
    %% unregister_command is a cast: a call to the same server orders after it
    ignored = peer:call(Peer, gen_server, call, [emqx_ctl, sync]),
    ?assertEqual({error, cmd_not_found}, peer:call(Peer, emqx_ctl, lookup_command, [guard])),
    ok.

%% EMQX's installer: erl_tar in memory, then file:write_file for each file (modes are lost).
install(Bin, PluginsDir) ->
    {ok, Files} = erl_tar:extract({binary, Bin}, [memory, compressed]),
    lists:foreach(
        fun({Name, Content}) ->
            Path = filename:join(PluginsDir, Name),
            ok = filelib:ensure_dir(Path),
            ok = file:write_file(Path, Content)
        end,
        Files
    ).

load_self(Peer) ->
    {?MODULE, Beam, File} = code:get_object_code(?MODULE),
    peer:call(Peer, code, load_binary, [?MODULE, File, Beam]).

%% backup_now may hand the run to the scheduler: wait (up to Tries * 100 ms) for the verified file
%% to get its final mode.
wait_for_backup(Dir, Tries) ->
    Files = filelib:wildcard(filename:join(Dir, "emqx-export-*.tar.gz")),
    Done = [F || F <- Files, {ok, #file_info{mode = M}} <- [file:read_file_info(F)], M band 8#077 =:= 0],
    case Done of
        [_ | _] ->
            Done;
        [] when Tries > 0 ->
            timer:sleep(100),
            wait_for_backup(Dir, Tries - 1);
        [] ->
            ct:fail("no backup in ~ts; found ~p", [Dir, Files])
    end.

%%--------------------------------------------------------------------
%% Run inside the peer

%% @doc Purges and loads each module, as EMQX's plugin manager does, returning each load result.
-spec load_beams([module()]) -> [{module(), term()}].
load_beams(Modules) ->
    [{M, begin _ = code:purge(M), code:load_file(M) end} || M <- Modules].

%% @doc Runs an `emqx ctl' command line through the emqx_ctl stand-in, capturing what it prints.
-spec run_cli([string()]) -> {term(), string()}.
run_cli(Args) ->
    emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command(Args) end).

%% @doc Starts disk_log's servers as a running EMQX has them: a log at File opened and closed.
-spec start_disk_log(file:filename()) -> ok.
start_disk_log(File) ->
    {ok, Log} = disk_log:open([{name, emqx_guard_disk_log_probe}, {file, File}]),
    ok = disk_log:close(Log).

%% @doc Every process and ETS table now (the baseline before the plugin starts).
-spec snapshot() -> #{procs := [pid()], ets := [ets:tid() | atom()]}.
snapshot() ->
    #{procs => erlang:processes() -- [self()], ets => ets:all()}.

%% @doc Processes that run plugin code, were started by it or carry a plugin name.
-spec plugin_processes() -> [{pid(), list()}].
plugin_processes() ->
    [{P, Info} || P <- erlang:processes() -- [self()], {true, Info} <- [belongs(P)]].

%% @doc Live processes that were not there at the baseline.
-spec new_processes([pid()]) -> [{pid(), list()}].
new_processes(Before) ->
    [{P, process_info(P, [registered_name, initial_call, current_function, dictionary])}
     || P <- erlang:processes() -- [self() | Before], is_process_alive(P)].

%% @doc ETS tables named after the plugin, owned by a plugin process, or created since the
%% baseline and still alive.
-spec plugin_ets_tables([ets:tid() | atom()]) -> [{term(), list()}].
plugin_ets_tables(Before) ->
    [
        {T, Info}
     || T <- ets:all(),
        Info <- [ets:info(T)],
        Info =/= undefined,
        plugin_name(proplists:get_value(name, Info)) orelse
            element(1, belongs(proplists:get_value(owner, Info))) orelse
            not lists:member(T, Before)
    ].

%% @doc Starts an (unlinked) process that records every timer a plugin module starts: calls to the
%% erlang timer BIFs and the timer module from code in an emqx_guard_* module, with the reference
%% each returned.
-spec start_timer_tracer() -> pid().
start_timer_tracer() ->
    Tracer = spawn(fun() -> tracer_loop(#{}, []) end),
    MS = [{'_', [], [{message, {caller}}, {exception_trace}]}],
    Funs = [
        {erlang, send_after, 3},
        {erlang, send_after, 4},
        {erlang, start_timer, 3},
        {erlang, start_timer, 4},
        {timer, send_after, 2},
        {timer, send_after, 3},
        {timer, send_interval, 2},
        {timer, send_interval, 3},
        {timer, apply_after, 4},
        {timer, apply_interval, 4},
        {timer, apply_repeatedly, 4},
        {timer, exit_after, 2},
        {timer, exit_after, 3},
        {timer, kill_after, 1},
        {timer, kill_after, 2}
    ],
    {module, timer} = code:ensure_loaded(timer),
    %% (timer:apply_repeatedly/4 exists from OTP 26)
    [1 = erlang:trace_pattern(MFA, MS, [global]) || {M, F, A} = MFA <- Funs, erlang:function_exported(M, F, A)],
    _ = erlang:trace(all, true, [call, {tracer, Tracer}]),
    Tracer.

%% @doc The timers a plugin module started that are still running (and how many it started).
-spec live_plugin_timers(pid()) -> {[{mfa(), mfa(), term()}], non_neg_integer()}.
live_plugin_timers(Tracer) ->
    Ref = make_ref(),
    Tracer ! {get, self(), Ref},
    Timers =
        receive
            {Ref, T} -> T
        end,
    {[{Caller, MFA, TRef} || {Caller, MFA, TRef} <- Timers, timer_alive(TRef)], length(Timers)}.

%% Pending: per process, the stack of traced calls not yet returned (timer:send_after/2 calls
%% timer:send_after/3, which calls erlang:send_after/3).
tracer_loop(Pending, Timers) ->
    receive
        {trace, Pid, call, {M, F, Args}, Caller} ->
            Stack = maps:get(Pid, Pending, []),
            tracer_loop(Pending#{Pid => [{Caller, {M, F, length(Args)}} | Stack]}, Timers);
        {trace, Pid, return_from, _MFA, Ret} ->
            case maps:get(Pid, Pending, []) of
                [{{CM, _, _} = Caller, MFA} | Stack] ->
                    Timers1 =
                        case plugin_name(CM) of
                            true -> [{Caller, MFA, Ret} | Timers];
                            false -> Timers
                        end,
                    tracer_loop(Pending#{Pid => Stack}, Timers1);
                [_ | Stack] ->
                    tracer_loop(Pending#{Pid => Stack}, Timers);
                [] ->
                    tracer_loop(Pending, Timers)
            end;
        {trace, Pid, exception_from, _MFA, _Exception} ->
            tracer_loop(Pending#{Pid => tl0(maps:get(Pid, Pending, []))}, Timers);
        {get, From, Ref} ->
            From ! {Ref, Timers},
            tracer_loop(Pending, Timers);
        _ ->
            tracer_loop(Pending, Timers)
    end.

timer_alive(Ref) when is_reference(Ref) ->
    erlang:read_timer(Ref) =/= false;
timer_alive({ok, {send_local, Ref}}) ->
    erlang:read_timer(Ref) =/= false;
timer_alive({ok, {once, Ref}}) ->
    erlang:read_timer(Ref) =/= false;
timer_alive({ok, {interval, Ref}}) ->
    %% interval timers are kept in the timer server's table, keyed by this reference
    lists:any(
        fun(T) -> ets:info(T, name) =:= timer andalso ets:member(T, Ref) end,
        ets:all()
    );
timer_alive(_) ->
    false.

tl0([]) -> [];
tl0([_ | T]) -> T.

belongs(Pid) when is_pid(Pid) ->
    case process_info(Pid, [registered_name, initial_call, current_function, dictionary]) of
        undefined ->
            {false, []};
        Info ->
            Dict = proplists:get_value(dictionary, Info, []),
            Mods =
                [reg_name(proplists:get_value(registered_name, Info))] ++
                    [element(1, proplists:get_value(initial_call, Info))] ++
                    [element(1, proplists:get_value(current_function, Info))] ++
                    [M || {'$initial_call', {M, _, _}} <- Dict] ++
                    [A || {'$ancestors', As} <- Dict, A <- As, is_atom(A)],
            {lists:any(fun plugin_name/1, Mods), Info}
    end;
belongs(_) ->
    {false, []}.

reg_name([]) -> undefined;
reg_name(Name) -> Name.

plugin_name(?MODULE) -> false;
plugin_name(Name) when is_atom(Name) -> lists:prefix("emqx_guard", atom_to_list(Name));
plugin_name(_) -> false.

%%--------------------------------------------------------------------
%% Where things are

project_root() ->
    find_root(filename:dirname(code:which(?MODULE))).

find_root("/") ->
    ct:fail("cannot find the project root above ~ts", [code:which(?MODULE)]);
find_root(Dir) ->
    case filelib:is_regular(filename:join([Dir, "erlang", "emqx_guard.app.src"])) andalso
        filelib:is_regular(filename:join(Dir, "rebar.config"))
    of
        true -> Dir;
        false -> find_root(filename:dirname(Dir))
    end.

app_src_vsn(Root) ->
    {ok, [{application, ?APP, Props}]} = file:consult(filename:join([Root, "erlang", "emqx_guard.app.src"])),
    proplists:get_value(vsn, Props).

package_path(Root, Vsn) ->
    Path =
        case os:getenv("EMQX_GUARD_PACKAGE") of
            P when P =:= false; P =:= "" ->
                filename:join([Root, "_build", "plugin", "emqx_guard-" ++ Vsn ++ ".tar.gz"]);
            P ->
                P
        end,
    case filelib:is_regular(Path) of
        true -> Path;
        false -> ct:fail("package ~ts not found: run `make package` first", [Path])
    end.

packaged_app_vsn(Config) ->
    Top = "emqx_guard-" ++ ?config(vsn, Config),
    [AppVsn] = lists:usort([
        V
     || {N, _} <- files(Config),
        [T, "emqx_guard-" ++ V, "ebin", "emqx_guard.app"] <- [filename:split(N)],
        T =:= Top
    ]),
    AppVsn.

package_bin(Config) ->
    {ok, Bin} = file:read_file(?config(package, Config)),
    Bin.

%% The package's files as EMQX's installer reads them: [{Name, Content}].
files(Config) ->
    {ok, Files} = erl_tar:extract({binary, package_bin(Config)}, [memory, compressed]),
    Files.

file_in(Rel, Path) ->
    case lists:keyfind(Path, 1, Rel) of
        {_, Bin} -> Bin;
        false -> ct:fail("~ts missing from the package", [filename:join(Path)])
    end.

%%--------------------------------------------------------------------
%% A small, strict JSON reader (OTP 25 has no json module): objects become maps with binary
%% keys, arrays lists, strings UTF-8 binaries, numbers integers or floats, and true, false,
%% null the atoms. Anything else (trailing commas, single quotes, garbage after the value,
%% duplicate keys, raw control characters in strings) raises error({bad_json, Rest}).

-spec json_decode(binary()) -> term().
json_decode(Bin) ->
    {Value, Rest} = json_value(json_ws(Bin)),
    case json_ws(Rest) of
        <<>> -> Value;
        Other -> error({bad_json, Other})
    end.

json_value(<<${, R/binary>>) ->
    case json_ws(R) of
        <<$}, R1/binary>> -> {#{}, R1};
        R1 -> json_members(R1, #{})
    end;
json_value(<<$[, R/binary>>) ->
    case json_ws(R) of
        <<$], R1/binary>> -> {[], R1};
        R1 -> json_elements(R1, [])
    end;
json_value(<<$", R/binary>>) ->
    json_string(R, []);
json_value(<<"true", R/binary>>) ->
    {true, R};
json_value(<<"false", R/binary>>) ->
    {false, R};
json_value(<<"null", R/binary>>) ->
    {null, R};
json_value(Bin) ->
    case re:run(Bin, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?", [{capture, all, binary}]) of
        {match, [Num | Parts]} ->
            <<_:(byte_size(Num))/binary, Rest/binary>> = Bin,
            {json_number(Num, Parts), Rest};
        nomatch ->
            error({bad_json, Bin})
    end.

%% Parts: the integer digits, then (when present) the fraction and the exponent.
json_number(Num, [_Int]) ->
    binary_to_integer(Num);
json_number(Num, [_Int, <<>>, Exp]) ->
    %% binary_to_float/1 wants a fraction: 1e2 -> 1.0e2
    Mantissa = binary:part(Num, 0, byte_size(Num) - byte_size(Exp)),
    binary_to_float(<<Mantissa/binary, ".0", Exp/binary>>);
json_number(Num, _) ->
    binary_to_float(Num).

json_members(<<$", R/binary>>, Acc) ->
    {Key, R1} = json_string(R, []),
    case maps:is_key(Key, Acc) of
        true -> error({bad_json, {duplicate_key, Key}});
        false -> ok
    end,
    case json_ws(R1) of
        <<$:, R2/binary>> ->
            {Value, R3} = json_value(json_ws(R2)),
            Acc1 = Acc#{Key => Value},
            case json_ws(R3) of
                <<$,, R4/binary>> -> json_members(json_ws(R4), Acc1);
                <<$}, R4/binary>> -> {Acc1, R4};
                Other -> error({bad_json, Other})
            end;
        Other ->
            error({bad_json, Other})
    end;
json_members(Other, _) ->
    error({bad_json, Other}).

json_elements(Bin, Acc) ->
    {Value, R} = json_value(Bin),
    case json_ws(R) of
        <<$,, R1/binary>> -> json_elements(json_ws(R1), [Value | Acc]);
        <<$], R1/binary>> -> {lists:reverse([Value | Acc]), R1};
        Other -> error({bad_json, Other})
    end.

json_string(<<$", R/binary>>, Acc) ->
    {unicode:characters_to_binary(lists:reverse(Acc)), R};
json_string(<<$\\, E, R/binary>>, Acc) when E =/= $u ->
    C =
        case E of
            $" -> $";
            $\\ -> $\\;
            $/ -> $/;
            $b -> $\b;
            $f -> $\f;
            $n -> $\n;
            $r -> $\r;
            $t -> $\t;
            _ -> error({bad_json, <<$\\, E, R/binary>>})
        end,
    json_string(R, [C | Acc]);
json_string(<<"\\u", H:4/binary, R/binary>>, Acc) ->
    case {json_hex(H), R} of
        {Hi, <<"\\u", L:4/binary, R1/binary>>} when Hi >= 16#D800, Hi =< 16#DBFF ->
            Lo = json_hex(L),
            (Lo >= 16#DC00 andalso Lo =< 16#DFFF) orelse error({bad_json, R}),
            json_string(R1, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
        {C, _} when C >= 16#D800, C =< 16#DFFF ->
            error({bad_json, {lone_surrogate, H}});
        {C, _} ->
            json_string(R, [C | Acc])
    end;
json_string(<<C/utf8, R/binary>>, Acc) when C >= 16#20 ->
    json_string(R, [C | Acc]);
json_string(Other, _) ->
    error({bad_json, Other}).

json_hex(H) ->
    case re:run(H, "^[0-9a-fA-F]{4}$") of
        {match, _} -> binary_to_integer(H, 16);
        nomatch -> error({bad_json, H})
    end.

json_ws(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> json_ws(R);
json_ws(Bin) -> Bin.

%% @doc The reader above accepts JSON and rejects what is not JSON (so the release.json checks
%% cannot pass on a file EMQX could not read).
-spec json_reader_self_check(list()) -> ok.
json_reader_self_check(_Config) ->
    ?assertEqual(
        #{<<"a">> => [1, -2, 1.5, true, false, null], <<"b">> => #{<<"c">> => <<"x\"y\\/é😀"/utf8>>}},
        json_decode(<<" {\"a\": [1, -2, 1.5, true, false, null],\n \"b\": {\"c\": \"x\\\"y\\\\\\/\\u00e9\\ud83d\\ude00\"}} ">>)
    ),
    ?assertEqual(2.5e3, json_decode(<<"2.5e3">>)),
    ?assertEqual(-1.0e2, json_decode(<<"-1e2">>)),
    Bad = [
        <<"{\"a\": 1,}">>,
        <<"[1, 2,]">>,
        <<"{'a': 1}">>,
        <<"{\"a\": 1} x">>,
        <<"{\"a\": 1, \"a\": 2}">>,
        <<"\"tab\there\"">>,
        <<"01">>,
        <<"{\"a\" 1}">>,
        <<"">>,
        <<"[true">>
    ],
    [?assertError({bad_json, _}, json_decode(B)) || B <- Bad],
    ok.
