%% Common Test suite for the files of an export (issue 19, defects 3, 9 and 10): what a failed or
%% timed-out export removes (only what it made itself, never an export someone else made in the
%% meantime), what an export interrupted by a node's death leaves and how the plugin clears it at
%% start, and a disk error said in words. Against the EMQX stand-ins (as EMQX 5.8.5+, and as EMQX
%% 5.1-5.8.4: the stand-in compiled with `EMQX_BEFORE_5_8_5'), real files in priv_dir, the real NIF.
-module(emqx_guard_export_files_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([
    timed_out_export_keeps_exports_made_meanwhile/1,
    killed_export_leftovers_cleared_at_start/1,
    leftovers_of_this_life_cleared_before_a_run/1,
    disk_errors_said_in_words/1,
    full_tmpfs_said_in_words/1,
    disk_space_is_what_df_says/1
]).
%% Run inside a peer.
-export([peer_setup/2, peer_backup_now/0, peer_ctl/1, peer_reports/0, peer_swept/0, log/2]).

-define(EXPORT_RE, "^emqx-export-[0-9]{4}(-[0-9]{2}){5}\\.[0-9]{3}\\.tar\\.gz$").

all() ->
    [disk_space_is_what_df_says, {group, emqx_5_8_5}, {group, emqx_5_1}].

%% The same cases against both kinds of EMQX export: with `out_dir' (5.8.5+) and without.
groups() ->
    Cases = [
        timed_out_export_keeps_exports_made_meanwhile,
        killed_export_leftovers_cleared_at_start,
        disk_errors_said_in_words,
        full_tmpfs_said_in_words
    ],
    [{emqx_5_8_5, [], Cases ++ [leftovers_of_this_life_cleared_before_a_run]}, {emqx_5_1, [], Cases}].

init_per_suite(Config) ->
    case try emqx_guard_nif:list_backups(list_to_binary(?config(priv_dir, Config))) catch C:R -> {C, R} end of
        {ok, _} -> Config;
        Other -> ct:fail({nif_not_usable, Other})
    end.

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_group(emqx_5_1, Config) ->
    ok = emqx_guard_export_standin:as_before_5_8_5(),
    [{emqx, before_5_8_5} | Config];
init_per_group(_, Config) ->
    [{emqx, as_built} | Config].

end_per_group(emqx_5_1, _Config) ->
    ok = emqx_guard_export_standin:as_built();
end_per_group(_, _Config) ->
    ok.

init_per_testcase(TC, Config) ->
    DataDir = filename:join(?config(priv_dir, Config), atom_to_list(TC) ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join([DataDir, "backup", "x"])),
    emqx:set_data_dir(DataDir),
    ok = emqx_mgmt_data_backup:reset(),
    %% alarms an earlier suite left raised (all suites share the stand-in) are not this case's
    ok = emqx_alarm:reset(),
    [{data_dir, DataDir}, {backup_dir, filename:join(DataDir, "backup")} | Config].

end_per_testcase(_TC, _Config) ->
    ok = emqx_mgmt_data_backup:reset(),
    ok.

%%--------------------------------------------------------------------
%% Defect 3: a failed export removes only what it made
%%--------------------------------------------------------------------

%% Our export hangs and times out. While it hangs, an operator runs `emqx ctl data export' (a
%% second, complete export, named after our run started) and a copy of another node's backup
%% arrives (renamed into place, named after our run started too). The timed-out run removes its
%% own partial tarball and staging directory and nothing else: both complete exports stay.
timed_out_export_keeps_exports_made_meanwhile(Config) ->
    Dir = ?config(backup_dir, Config),
    Old = earlier_backups(Dir),
    ok = emqx_mgmt_data_backup:set_mode({hang, 60000}),
    Self = self(),
    Runner = spawn_link(fun() ->
        Self ! {self(), run_backup(#{keep => 1, export_timeout => 3000})}
    end),
    ok = poll(fun emqx_mgmt_data_backup:hanging/0),
    %% ours: the tarball EMQX opened, wherever the export writes it
    [Ours] = [N || N <- export_names_below(Dir) -- Old, lists:suffix(".tar.gz", N)],
    %% the operator's export, complete, while ours hangs
    ok = emqx_mgmt_data_backup:set_mode(ok),
    {ok, #{filename := Manual}} = emqx_mgmt_data_backup:export(),
    ManualName = filename:basename(binary_to_list(Manual)),
    ?assertEqual(Dir, filename:dirname(binary_to_list(Manual))),
    %% another node's copy arriving: written elsewhere, renamed into place
    CopyName = now_export_name(),
    ok = write_export(filename:join(?config(data_dir, Config), "incoming"), filename:basename(CopyName, ".tar.gz")),
    ok = file:rename(filename:join([?config(data_dir, Config), "incoming", CopyName]), filename:join(Dir, CopyName)),
    {error, R} =
        receive
            {Runner, Result} -> Result
        after 60000 -> ct:fail(run_never_finished)
        end,
    ?assertEqual({export_timeout, #{timeout_ms => 3000}}, maps:get(reason, R)),
    %% the two complete exports made meanwhile are there and verify
    ?assertEqual(lists:sort([ManualName, CopyName | Old]), ls(Dir)),
    [{ok, #{result := ok}} = emqx_guard_backups:check(filename:join(Dir, N), off, 60000) || N <- [ManualName, CopyName]],
    %% what the run removed is its own tarball, named as EMQX named it
    ?assertEqual([list_to_binary(filename:basename(Ours))], [N || N <- maps:get(removed, R), lists:suffix(".tar.gz", binary_to_list(N))]),
    ?assertEqual([], export_names_below(Dir) -- [ManualName, CopyName | Old]).

%%--------------------------------------------------------------------
%% Defect 9: what an export killed with its node left is cleared at start
%%--------------------------------------------------------------------

%% A node is killed (SIGKILL) while the stand-in export hangs, at three moments: while a table
%% is staged (the tarball just opened), mid-write (1 MiB of the tarball on disk), and after the
%% tarball was closed but before EMQX returned. Each time a node is started again on the same
%% data dir: what the killed export left (EMQX's staging dir, the cut tarball, the run's own
%% staging dir) is gone, a complete export is kept (it verifies), each removal is logged, and
%% `guard backup_status' says what was removed, once. Left alone throughout: the good backup,
%% an upload under another name, an older broken export, a broken one in `ns/'.
killed_export_leftovers_cleared_at_start(Config) ->
    DataDir = filename:join(?config(priv_dir, Config), "killed_" ++ atom_to_list(?config(emqx, Config))),
    Dir = filename:join(DataDir, "backup"),
    Variant = ?config(emqx, Config),
    P0 = start_node(DataDir, Variant),
    ["Backup done in " ++ _ | _] = peer:call(P0, ?MODULE, peer_backup_now, []),
    [Good] = export_names_below(Dir),
    %% files that are never the plugin's to remove
    ok = file:write_file(filename:join(Dir, "my-upload.tar.gz"), <<31, 139, 8, 0, 0>>),
    OldBroken = "emqx-export-2025-01-01-10-00-00.000.tar.gz",
    ok = file:write_file(filename:join(Dir, OldBroken), <<31, 139, 8, 0, 0>>),
    ok = file:change_time(filename:join(Dir, OldBroken), {{2025, 1, 1}, {10, 0, 0}}),
    Ns = filename:join([Dir, "ns", "tenant1", "emqx-export-2030-01-01-10-00-00.000.tar.gz"]),
    ok = filelib:ensure_dir(Ns),
    ok = file:write_file(Ns, <<31, 139, 8, 0, 0>>),
    Untouchable = lists:sort([Good, OldBroken, filename:basename(Ns)]),
    Killed = lists:foldl(
        fun(Moment, P) ->
            ok = peer:call(P, emqx_mgmt_data_backup, set_mode, [{hang, 600000, Moment}]),
            _ = peer:call(P, erlang, spawn, [emqx_guard_scheduler, run_now, []]),
            ok = poll(fun() -> peer:call(P, emqx_mgmt_data_backup, hanging, []) end),
            Left = export_names_below(Dir) -- Untouchable,
            ?assertNotEqual([], Left, Moment),
            ok = kill_node(P),
            %% still there after the kill
            ?assertEqual(Left, export_names_below(Dir) -- Untouchable, Moment),
            Next = start_node(DataDir, Variant),
            %% the tarball closed before the kill is a complete export
            Kept = [N || Moment =:= complete, N <- Left, lists:suffix(".tar.gz", N)],
            %% the sweep at start is done once its worker is gone
            ok = poll(fun() -> peer:call(Next, ?MODULE, peer_swept, []) end),
            ?assertEqual(Kept, export_names_below(Dir) -- Untouchable, Moment),
            [{ok, #{result := ok}} = emqx_guard_backups:check(filename:join(Dir, N), off, 60000) || N <- Kept],
            Removed = Left -- Kept,
            %% logged, one report per removal, naming it
            Reports = peer:call(Next, ?MODULE, peer_reports, []),
            [?assert(lists:any(fun(R) -> mentions(R, N) end, Reports), {Moment, N, Reports}) || N <- Removed],
            %% shown once
            Status = peer:call(Next, ?MODULE, peer_ctl, [["backup_status"]]),
            ct:log("~p: ~p", [Moment, Status]),
            [?assert(lists:any(fun(L) -> string:find(L, N) =/= nomatch end, Status), {Moment, N, Status}) || N <- Removed],
            Again = peer:call(Next, ?MODULE, peer_ctl, [["backup_status"]]),
            [?assertNot(lists:any(fun(L) -> string:find(L, N) =/= nomatch end, Again), {Moment, N, Again}) || N <- Removed],
            Next
        end,
        P0,
        [staging, partial, complete]
    ),
    ok = peer:stop(Killed),
    ?assert(filelib:is_file(Ns)),
    ?assert(filelib:is_file(filename:join(Dir, "my-upload.tar.gz"))),
    ?assert(filelib:is_file(filename:join(Dir, OldBroken))).

%% A staging directory of the plugin's own made during this node's life (a run killed when the
%% plugin stopped, say) may belong to a run going on when the plugin starts: the sweep at start
%% leaves it. The next run removes it before it exports (runs go one at a time), and
%% `guard backup_status' says so once.
leftovers_of_this_life_cleared_before_a_run(Config) ->
    Dir = ?config(backup_dir, Config),
    Run = filename:join([Dir, ".emqx_guard_export", integer_to_list(erlang:system_time(millisecond)) ++ "-1"]),
    Base = filename:basename(now_export_name(), ".tar.gz"),
    ok = write_export(Run, Base),
    {ok, Whole} = file:read_file(filename:join(Run, Base ++ ".tar.gz")),
    ok = file:write_file(filename:join(Run, Base ++ ".tar.gz"), binary:part(Whole, 0, byte_size(Whole) div 2)),
    ok = filelib:ensure_dir(filename:join([Run, Base, "mnesia", "emqx_admin"])),
    emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
    ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
    try
        ok = poll(fun() -> not lists:keymember(emqx_guard_leftovers, 1, supervisor:which_children(emqx_guard_sup)) end),
        ?assertEqual([Base, Base ++ ".tar.gz"], export_names_below(Dir)),
        {ok, #{file := New}} = emqx_guard_scheduler:run_now(),
        ?assertEqual([binary_to_list(New)], export_names_below(Dir)),
        ?assertEqual(lists:sort([binary_to_list(New), companion(New)]), ls(Dir)),
        Status = emqx_guard_ct_helper:ctl(["backup_status"]),
        ct:log("~p", [Status]),
        ?assert(lists:member("left by interrupted exports:", Status), Status),
        [_] = [L || L <- Status, string:find(L, Base ++ ".tar.gz: cut short, removed") =/= nomatch],
        [_] = [L || L <- Status, string:find(L, Base ++ "/: EMQX's staging directory, removed") =/= nomatch],
        Again = emqx_guard_ct_helper:ctl(["backup_status"]),
        ?assertEqual([], [L || L <- Again, string:find(L, Base) =/= nomatch])
    after
        emqx_guard_ct_helper:end_case()
    end.

%%--------------------------------------------------------------------
%% Defect 10: a disk error said in words
%%--------------------------------------------------------------------

%% EMQX nests the reason a disk gives deep inside its own terms (mnesia's "Tab copier iteration
%% failed" file_error, erl_tar's formatted strings, a raised badmatch, a bare posix from
%% erl_tar:close). `guard backup_now', the run's error and the alarm say it in words, with the
%% backup directory, and for a full disk how much is free and about how much the last backup
%% took; no Erlang term. The raw term is in the log.
disk_errors_said_in_words(_Config) ->
    emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
    ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
    try
        Dir = emqx_guard_emqx:backup_dir(),
        ["Backup done in " ++ _ | _] = emqx_guard_ct_helper:result(emqx_guard_ct_helper:ctl(["backup_now"])),
        [Good] = export_names_below(Dir),
        LastSize = binary_to_list(emqx_guard_render:size(filelib:file_size(filename:join(Dir, Good)))),
        Space = "\\(([0-9.]+ (B|KiB|MiB|GiB|TiB)) free once the failed export was removed; the last backup took about " ++ re_quote(LastSize) ++ "\\)$",
        Cases = [
            {{disk_error, mnesia, enospc}, "no space left on device in " ++ re_quote(Dir) ++ " " ++ Space, "Tab copier iteration failed"},
            {{disk_error, tar, enospc}, "no space left on device in " ++ re_quote(Dir) ++ " " ++ Space, "no space left on device"},
            {{disk_error, close, enospc}, "no space left on device in " ++ re_quote(Dir) ++ " " ++ Space, "enospc"},
            %% (the file system's free space is not the quota: not said)
            {{disk_error, tar, edquot}, "disk quota exceeded in " ++ re_quote(Dir) ++ " \\(the last backup took about " ++ re_quote(LastSize) ++ "\\)$", "quota"},
            {{disk_error, open, eacces}, "permission denied in " ++ re_quote(Dir) ++ ": EMQX's user must be able to write there$", "permission denied"},
            {{disk_error, mnesia, erofs}, re_quote(Dir) ++ " is on a read-only file system$", "erofs"},
            {{disk_error, mnesia, eio}, "input/output error in " ++ re_quote(Dir) ++ " \\(the disk may be failing\\)$", "eio"},
            {{error, {badmatch, {error, {timeout, {gen_server, call, [mnesia_checkpoint_sup, start_child, 30000]}}}}},
                "a call inside EMQX timed out \\(gen_server:call\\)$", "mnesia_checkpoint_sup"},
            %% a reason holding settings: logged, with the secret hidden as in every other log
            {{error, {enospc, #{<<"backup_remote_secret_key">> => <<"s3cr3t-k3y-in-a-reason">>}}},
                "no space left on device in " ++ re_quote(Dir), "backup_remote_secret_key"}
        ],
        lists:foreach(
            fun({Mode, Words, InLog}) ->
                ok = emqx_mgmt_data_backup:set_mode(Mode),
                {ok, Handler} = emqx_guard_test_logs:start(),
                [Error, "Earlier backups were kept."] = emqx_guard_ct_helper:result(emqx_guard_ct_helper:ctl(["backup_now"])),
                Logged = emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Handler)),
                ?assertMatch({match, _}, re:run(Error, "^Error: backup failed after [0-9]+ ms: export failed: " ++ Words, [unicode]), {Mode, Error}),
                ?assertEqual(nomatch, re:run(Error, "[{}]|'EXIT'|badmatch"), {Mode, Error}),
                #{last_run := #{error := Line}} = emqx_guard_scheduler:status(),
                ?assertMatch({match, _}, re:run(Error, re_quote(binary_to_list(Line)))),
                [#{message := Alarm}] = emqx_alarm:active_alarms(),
                ?assertEqual(<<"emqx_guard: backup failed: ", Line/binary>>, Alarm),
                %% the good backup is still there, nothing of the failed one is
                ?assertEqual([Good], export_names_below(Dir), Mode),
                %% the raw term, for whoever debugs it, in the log report of the run
                [Failed] = [R || R = #{msg := emqx_guard_backup_failed} <- Logged],
                ?assertNotEqual(nomatch, string:find(io_lib:format("~tp", [Failed]), InLog), {Mode, Failed}),
                ?assertEqual(nomatch, string:find(io_lib:format("~tp", [Logged]), "s3cr3t-k3y-in-a-reason"), Mode)
            end,
            Cases
        )
    after
        emqx_guard_ct_helper:end_case()
    end.

%% A real full disk: the backup directory on a 4 MiB tmpfs (needs root and `mount'; skipped
%% where that is not allowed), an export of about 8 MiB. The words name the directory, and the
%% space free on it.
full_tmpfs_said_in_words(Config) ->
    Dir = ?config(backup_dir, Config),
    case os:cmd("mount -t tmpfs -o size=4m emqx_guard_test " ++ Dir ++ " 2>&1 && echo mounted") of
        "mounted\n" ->
            try
                full_tmpfs(Dir)
            after
                os:cmd("umount -l " ++ Dir)
            end;
        Why ->
            {skip, "no tmpfs here: " ++ string:trim(Why)}
    end.

full_tmpfs(Dir) ->
    emqx_guard_ct_helper:set_now({{2026, 11, 25}, {10, 0, 0}}),
    ok = emqx_guard_ct_helper:start_app(emqx_guard_ct_helper:fake_opts(#{})),
    try
        ["Backup done in " ++ _ | _] = emqx_guard_ct_helper:result(emqx_guard_ct_helper:ctl(["backup_now"])),
        [Good] = export_names_below(Dir),
        ok = emqx_mgmt_data_backup:set_mode({big, 8 * 1024 * 1024}),
        [Error, "Earlier backups were kept."] = emqx_guard_ct_helper:result(emqx_guard_ct_helper:ctl(["backup_now"])),
        ct:log("~ts", [Error]),
        {match, [Free]} = re:run(
            Error,
            "^Error: backup failed after [0-9]+ ms: export failed: no space left on device in " ++ re_quote(Dir) ++
                " \\(([0-9.]+ (?:B|KiB|MiB)) free once the failed export was removed; the last backup took about [0-9.]+ KiB\\)$",
            [{capture, all_but_first, list}]
        ),
        ?assertNotEqual(nomatch, string:find(Free, "B"), Free),
        ?assertEqual([Good], export_names_below(Dir)),
        %% and the good backup's plugins companion, nothing of the failed one
        ?assertEqual(lists:sort([Good, companion(Good)]), ls(Dir))
    after
        emqx_guard_ct_helper:end_case()
    end.

%% The NIF's statvfs, as `df' reads it: the same size to the byte, about the same space
%% available (other processes write meanwhile); a missing path is `not_found'.
disk_space_is_what_df_says(Config) ->
    Dir = ?config(backup_dir, Config),
    {ok, #{total := Total, available := Available}} = emqx_guard_core:disk_space(Dir),
    [DfSize, DfAvail] = [list_to_integer(N) || N <- string:lexemes(lists:last(string:lexemes(os:cmd("df -B1 --output=size,avail " ++ Dir), "\n")), " ")],
    ?assertEqual(DfSize, Total),
    ?assert(abs(DfAvail - Available) < 1024 * 1024 * 1024, {DfAvail, Available}),
    ?assert(Available =< Total),
    {error, {not_found, Why}} = emqx_guard_core:disk_space(filename:join(Dir, "missing/deeper")),
    ?assertNotEqual(nomatch, binary:match(Why, <<"missing/deeper">>)),
    ?assertMatch({error, {badarg, _}}, emqx_guard_core:disk_space(not_a_path)).

%%--------------------------------------------------------------------
%% helpers
%%--------------------------------------------------------------------

%% One manual run with the real steps and no scheduler behind it: `{ok, Outcome}' for a good
%% backup, `{error, Outcome}' for a failed one.
run_backup(Request) ->
    case emqx_guard_run:run(Request#{trigger => manual}, #{}) of
        #{result := ok} = Outcome -> {ok, Outcome};
        Outcome -> {error, Outcome}
    end.

%% Every export-named entry (file or directory, `.tar.gz' or not) in Dir and below, by base name.
export_names_below(Dir) ->
    lists:usort(walk(Dir)).

walk(Dir) ->
    case file:list_dir(Dir) of
        {ok, Names} ->
            lists:flatmap(
                fun(N) ->
                    P = filename:join(Dir, N),
                    %% exports and their staging, not their plugins companions
                    Here = [N || lists:prefix("emqx-export-", N), not lists:suffix(".plugins.tgz", N)],
                    case filelib:is_dir(P) of
                        true -> Here ++ walk(P);
                        false -> Here
                    end
                end,
                Names
            );
        {error, _} ->
            []
    end.

%% An export name for now, in the node's local time, as EMQX makes it.
now_export_name() ->
    Ms = erlang:system_time(millisecond),
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_local_time(Ms, millisecond),
    lists:flatten(
        io_lib:format("emqx-export-~4..0b-~2..0b-~2..0b-~2..0b-~2..0b-~2..0b.~3..0b.tar.gz", [Y, Mo, D, H, Mi, S, Ms rem 1000])
    ).

%% A valid export in EMQX's layout, as if made on 2025-01-Day, named as EMQX names it.
old_export(Dir, Day) ->
    Base = lists:flatten(io_lib:format("emqx-export-2025-01-~2..0b-10-00-00.000", [Day])),
    ok = write_export(Dir, Base),
    Base ++ ".tar.gz".

write_export(Dir, Base) ->
    Tar = filename:join(Dir, Base ++ ".tar.gz"),
    ok = filelib:ensure_dir(Tar),
    {ok, Fd} = erl_tar:open(Tar, [write, compressed]),
    ok = erl_tar:add(Fd, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Fd, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:add(Fd, term_to_binary({emqx_admin, Base}), Base ++ "/mnesia/emqx_admin", []),
    erl_tar:close(Fd).

%% Two earlier backups and an upload, the files a failed run must leave alone.
earlier_backups(Dir) ->
    Old = [old_export(Dir, Day) || Day <- [1, 2]],
    ok = file:write_file(filename:join(Dir, "my-upload.tar.gz"), <<"upload">>),
    lists:sort(["my-upload.tar.gz" | Old]).

ls(Dir) ->
    {ok, Names} = file:list_dir(Dir),
    lists:sort(Names).

%% The plugins companion's name of the export Name (`emqx_guard_companion').
companion(Name) ->
    binary_to_list(emqx_guard_companion:name(iolist_to_binary(Name))).

poll(Fun) ->
    poll(Fun, 1000).

poll(_Fun, 0) ->
    {error, timeout};
poll(Fun, N) ->
    case Fun() of
        true ->
            ok;
        false ->
            timer:sleep(10),
            poll(Fun, N - 1)
    end.

%% A node (a real OS process, controlled over its standard I/O) running the plugin on DataDir,
%% with the stand-ins playing Variant. Not linked: the test kills it.
start_node(DataDir, Variant) ->
    CodePath = lists:usort([
        filename:dirname(code:which(emqx_guard_app)),
        filename:dirname(code:which(emqx)),
        filename:dirname(code:which(?MODULE))
    ]),
    Name = "guard_h5_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive])),
    Args = lists:append([["-pa", D] || D <- CodePath]),
    {ok, Peer, _Node} = peer:start(#{name => Name, longnames => false, connection => standard_io, args => Args}),
    ok = peer:call(Peer, ?MODULE, peer_setup, [DataDir, Variant], 60000),
    Peer.

%% SIGKILL, as the OOM killer or a power cut would end it.
kill_node(Peer) ->
    OsPid = peer:call(Peer, os, getpid, []),
    MRef = erlang:monitor(process, Peer),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive
        {'DOWN', MRef, process, Peer, _} -> ok
    after 30000 -> error(node_not_killed)
    end.

mentions(Report, Name) ->
    string:find(io_lib:format("~tp", [Report]), Name) =/= nomatch.

%%--------------------------------------------------------------------
%% Run inside a peer
%%--------------------------------------------------------------------

%% The stand-ins as Variant, this node's reports kept, then the plugin.
-spec peer_setup(file:filename(), as_built | before_5_8_5) -> ok.
peer_setup(DataDir, Variant) ->
    ok = filelib:ensure_dir(filename:join(DataDir, "x")),
    ok = emqx:set_data_dir(DataDir),
    {ok, _} = emqx_ctl:start(),
    ok = emqx_alarm:reset(),
    ok = emqx_mgmt_data_backup:reset(),
    case Variant of
        before_5_8_5 -> ok = emqx_guard_export_standin:as_before_5_8_5();
        as_built -> ok
    end,
    Keeper = spawn(fun() -> keep_reports([]) end),
    true = register(guard_h5_reports, Keeper),
    ok = logger:set_primary_config(level, all),
    _ = logger:set_handler_config(default, level, notice),
    ok = logger:add_handler(guard_h5_capture, ?MODULE, #{level => all}),
    {ok, _} = application:ensure_all_started(emqx_guard),
    _ = emqx_guard_scheduler:status(),
    ok.

%% The sweep at start has finished (its temporary worker is gone from the supervisor).
-spec peer_swept() -> boolean().
peer_swept() ->
    not lists:keymember(emqx_guard_leftovers, 1, supervisor:which_children(emqx_guard_sup)).

%% What `backup_now' printed after its steps: its result.
-spec peer_backup_now() -> [string()].
peer_backup_now() ->
    emqx_guard_ct_helper:result(peer_ctl(["backup_now"])).

-spec peer_ctl([string()]) -> [string()].
peer_ctl(Args) ->
    {ok, Out} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command(["guard" | Args]) end),
    [L || L <- string:split(Out, "\n", all), L =/= ""].

%% The plugin's log reports on this node so far.
-spec peer_reports() -> [map()].
peer_reports() ->
    guard_h5_reports ! {get, self()},
    receive
        {reports, Reports} -> Reports
    after 5000 -> error(no_report_keeper)
    end.

keep_reports(Acc) ->
    receive
        {report, R} -> keep_reports([R | Acc]);
        {get, From} -> From ! {reports, lists:reverse(Acc)}, keep_reports(Acc)
    end.

%% logger handler callback (in a peer)
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{msg := {report, R = #{msg := Msg}}}, _Config) when is_atom(Msg) ->
    case atom_to_list(Msg) of
        "emqx_guard_" ++ _ -> guard_h5_reports ! {report, R};
        _ -> ok
    end,
    ok;
log(_Event, _Config) ->
    ok.

re_quote(S) ->
    lists:flatmap(
        fun(C) ->
            case lists:member(C, "\\^$.|?*+()[]{}") of
                true -> [$\\, C];
                false -> [C]
            end
        end,
        S
    ).
