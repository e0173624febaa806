%% Common Test suite for verifying each backup once (issue 13): the verification records kept by
%% emqx_guard_verifications and trusted by retention and `guard backup_list', files changed after
%% their verification, `guard backup_verify', the plugin stopping in the middle of a verify, and
%% the `backup_io_limit' setting. The app runs against the EMQX stand-ins with real files and the
%% real NIF; the verify work is counted in bytes retention read and in the records themselves.
-module(emqx_guard_verify_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    recorded_verification_is_trusted/1,
    changed_files_are_verified_again/1,
    backup_verify_finds_a_corrupted_kept_file/1,
    plugin_stop_mid_verify_leaves_no_thread/1,
    io_limit_setting/1,
    damaged_records_file_means_verify_again/1,
    slow_retention_continues_where_it_stopped/1,
    retention_is_not_bound_by_the_export_timeout/1,
    plugin_stop_mid_retention_keeps_its_verdicts/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, stop_app/0, set_now/1, ctl/1, wait_until/1]).

all() ->
    [
        recorded_verification_is_trusted,
        changed_files_are_verified_again,
        backup_verify_finds_a_corrupted_kept_file,
        plugin_stop_mid_verify_leaves_no_thread,
        io_limit_setting,
        damaged_records_file_means_verify_again,
        slow_retention_continues_where_it_stopped,
        retention_is_not_bound_by_the_export_timeout,
        plugin_stop_mid_retention_keeps_its_verdicts
    ].

init_per_suite(Config) ->
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    set_now({{2026, 11, 25}, {10, 0, 0}}),
    start_app(fake_opts(#{})),
    ok = filelib:ensure_dir(filename:join(emqx_guard_emqx:backup_dir(), "x")),
    Config1.

end_per_testcase(_TC, _Config) ->
    emqx_guard_ct_helper:end_case().

%%--------------------------------------------------------------------

%% Keep 5 with four earlier backups: the first run reads the four (no records yet), the second
%% reads none of the files it keeps (all verified before), and their records stay as they were.
recorded_verification_is_trusted(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    Old = [old_export(Dir, Day) || Day <- [1, 2, 3, 4]],
    OldBytes = lists:sum([filelib:file_size(filename:join(Dir, N)) || N <- Old]),
    {ok, First} = emqx_guard_scheduler:run_now(),
    ?assertEqual(OldBytes, maps:get(retention_read, First)),
    ?assertEqual([], maps:get(pruned, First)),
    Before = records(),
    ?assertEqual(lists:sort([maps:get(file, First) | [list_to_binary(N) || N <- Old]]), lists:sort(maps:keys(Before))),
    ?assertEqual([ok], lists:usort([R || #{result := R} <- maps:values(Before)])),
    {ok, Second} = emqx_guard_scheduler:run_now(),
    ?assertEqual(0, maps:get(retention_read, Second)),
    ?assertEqual([list_to_binary(hd(Old))], maps:get(pruned, Second)),
    After = records(),
    %% the pruned file's record is gone, the new file's added, the others untouched
    ?assertEqual(maps:remove(list_to_binary(hd(Old)), Before), maps:remove(maps:get(file, Second), After)),
    %% the listing trusts them too: verified, and when
    [_Header | Rows] = ctl(["backup_list"]),
    ?assertEqual(5, length(Rows)),
    %% (the backups a run made carry their plugins companion)
    [?assertMatch({match, _}, re:run(R, "  verified \\(checked [0-9-]+ [0-9:]+ [+-][0-9:]+\\)(  with plugins)?$"), R) || R <- Rows],
    ?assertEqual(After, records()),
    %% and they survive a restart of the plugin
    stop_app(),
    start_app(fake_opts(#{})),
    ?assertEqual(After, records()).

%% Files changed after they were verified are read again: touched (good, still counted),
%% truncated and replaced by junk of the same size (bad: neither counted nor deleted). Unchanged
%% ones are trusted.
changed_files_are_verified_again(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    [A, B, C, D, E] = Old = [old_export(Dir, Day) || Day <- [1, 2, 3, 4, 5]],
    [_ | _] = ctl(["backup_list"]),
    Known = records(),
    ?assertEqual(5, map_size(Known)),
    %% E touched: same bytes, another mtime
    {ok, #file_info{mtime = MTime}} = file:read_file_info(path(E), [{time, posix}]),
    ok = file:write_file_info(path(E), #file_info{mtime = MTime + 3600}, [{time, posix}]),
    %% D truncated to half
    {ok, DBin} = file:read_file(path(D)),
    ok = file:write_file(path(D), binary:part(DBin, 0, byte_size(DBin) div 2)),
    %% C replaced (a new file renamed over it) by junk of the same size, given the old mtime
    {ok, #file_info{size = CSize, mtime = CTime}} = file:read_file_info(path(C), [{time, posix}]),
    ok = file:write_file(path(C) ++ ".new", binary:copy(<<"x">>, CSize)),
    ok = file:write_file_info(path(C) ++ ".new", #file_info{mtime = CTime}, [{time, posix}]),
    ok = file:rename(path(C) ++ ".new", path(C)),
    {ok, Run} = emqx_guard_scheduler:run_now(),
    %% only 4 verify (new, E, B, A): nothing deleted; C and D not counted, left in place
    ?assertEqual([], maps:get(pruned, Run)),
    ?assertEqual([list_to_binary(C), list_to_binary(D)], [N || {N, _} <- maps:get(prune_skipped, Run)]),
    ?assert(maps:get(retention_read, Run) > filelib:file_size(path(E))),
    ?assertEqual(lists:sort([binary_to_list(maps:get(file, Run)) | Old]), emqx_guard_ct_helper:backups()),
    Now = records(),
    %% A and B trusted (records as they were); E, D, C verified again
    ?assertEqual(maps:with(names([A, B]), Known), maps:with(names([A, B]), Now)),
    ?assertMatch(#{result := ok}, maps:get(list_to_binary(E), Now)),
    ?assertEqual((MTime + 3600) * 1000000000, maps:get(mtime_ns, maps:get(list_to_binary(E), Now))),
    ?assertMatch(#{result := {error, _}}, maps:get(list_to_binary(D), Now)),
    ?assertMatch(#{result := {error, _}}, maps:get(list_to_binary(C), Now)),
    %% the listing says so, without reading them again
    Rows = tl(ctl(["backup_list"])),
    [RowC] = [R || R <- Rows, lists:prefix("  " ++ C, R)],
    [RowD] = [R || R <- Rows, lists:prefix("  " ++ D, R)],
    ?assertNotEqual(nomatch, string:find(RowC, "NOT VERIFIED: ")),
    ?assertNotEqual(nomatch, string:find(RowD, "NOT VERIFIED: ")),
    ?assertEqual(Now, records()).

%% A kept file whose bytes change while size, mtime and inode stay (a disk going bad) still looks
%% verified to the records; `backup_verify' reads it and says so, and retention stops counting it.
backup_verify_finds_a_corrupted_kept_file(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    [A, B, C] = [old_export(Dir, Day) || Day <- [1, 2, 3]],
    %% a whole-second mtime, so that it can be set back exactly
    ok = file:write_file_info(path(B), #file_info{mtime = 1735725600}, [{time, posix}]),
    [_ | _] = ctl(["backup_list"]),
    Size = filelib:file_size(path(B)),
    {ok, Fd} = file:open(path(B), [read, write, raw, binary]),
    %% the gzip trailer's CRC-32, inverted
    {ok, <<Crc:32>>} = file:pread(Fd, Size - 8, 4),
    ok = file:pwrite(Fd, Size - 8, <<(bnot Crc):32>>),
    ok = file:close(Fd),
    ok = file:write_file_info(path(B), #file_info{mtime = 1735725600}, [{time, posix}]),
    ?assertEqual(Size, filelib:file_size(path(B))),
    %% the records cannot see it
    ?assert(lists:all(fun(R) -> string:find(R, "  verified") =/= nomatch end, tl(ctl(["backup_list"])))),
    %% the full check can
    All = ctl(["backup_verify", "--all"]),
    ["Read 3 backup(s) in " ++ Header | Lines] = emqx_guard_ct_helper:result(All),
    %% each file's read was printed as it went, before the summary
    ?assertEqual(6, length(emqx_guard_ct_helper:steps(All)), All),
    ?assertMatch({match, _}, re:run(Header, ": 2 verified, 1 NOT VERIFIED$")),
    ?assertEqual(["  " ++ C ++ "  verified", "  " ++ A ++ "  verified"], [L || L <- Lines, not lists:prefix("  " ++ B, L)]),
    [BadLine] = [L || L <- Lines, lists:prefix("  " ++ B ++ "  NOT VERIFIED: ", L)],
    ct:log("~ts", [BadLine]),
    %% recorded: the listing and retention now know
    [RowB] = [R || R <- tl(ctl(["backup_list"])), lists:prefix("  " ++ B, R)],
    ?assertNotEqual(nomatch, string:find(RowB, "NOT VERIFIED: ")),
    [_ | _] = ctl(["backup_keep", "2"]),
    Plan = ctl(["backup_prune", "--dry-run"]),
    ?assertMatch([_], [L || L <- Plan, lists:prefix("  " ++ B ++ "  ", L),
                            string:find(L, "  unverified: kept, counts for nothing (") =/= nomatch], Plan),
    %% one file by name; an unknown name is an error
    ?assertMatch(["Read 1 backup(s) in " ++ _, "  " ++ _], emqx_guard_ct_helper:result(ctl(["backup_verify", A]))),
    ?assertEqual(["  " ++ A ++ "  verified"], tl(emqx_guard_ct_helper:result(ctl(["backup_verify", A])))),
    [Error] = ctl(["backup_verify", "emqx-export-2020-01-01-00-00-00.000.tar.gz"]),
    ?assertMatch("Error: no backup named emqx-export-2020-01-01-00-00-00.000.tar.gz in " ++ _, Error),
    ?assertMatch(["Error: no backup named nonsense in " ++ _], ctl(["backup_verify", "nonsense"])).

%% The plugin stops while a backup's verify job reads a big export slowly (1MB/s): the stop
%% does not hang, `backup_now' is answered with a failure, no job thread is left, and the run is
%% recorded as failed.
plugin_stop_mid_verify_leaves_no_thread(_Config) ->
    ok = wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end),
    Threads = os_threads(),
    ["backup_io_limit = \"1MB/s\""] = ctl(["backup_io_limit", "1MB/s"]),
    ok = emqx_mgmt_data_backup:set_mode({big, 16 * 1024 * 1024}),
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {self(), ctl(["backup_now"])} end),
    %% the export is done and its verify job runs
    ok = wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 1 end),
    ?assert(os_threads() > Threads),
    stop_app(),
    Answer =
        receive
            {Caller, Lines} -> Lines
        after 30000 -> ct:fail(backup_now_not_answered)
        end,
    ?assertMatch(["Error: backup failed after " ++ _, "Earlier backups were kept."], emqx_guard_ct_helper:result(Answer)),
    ?assertNotEqual(nomatch, string:find(hd(emqx_guard_ct_helper:result(Answer)), "interrupted: the plugin stopped while the backup ran")),
    ok = wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 andalso os_threads() =:= Threads end),
    %% recorded as failed; the file kept, unverified
    start_app(fake_opts(#{})),
    Status = ctl(["backup_status"]),
    ?assert(lists:any(fun(L) -> lists:prefix("last run: ", L) andalso string:find(L, "failed") =/= nomatch end, Status), Status),
    ?assert(lists:member("runs: 0 ok, 1 failed, 0 skipped", Status), Status),
    ?assertEqual(1, length(emqx_guard_ct_helper:backups())),
    ?assertEqual(#{}, records()).

io_limit_setting(_Config) ->
    ?assertEqual(["backup_io_limit = \"off\" (verification reads at full speed, at the lowest CPU priority)"], ctl(["backup_io_limit"])),
    ?assertEqual(["backup_io_limit = \"50MB/s\""], ctl(["backup_io_limit", "50MB/s"])),
    ?assertEqual(50000000, maps:get(backup_io_limit, emqx_guard_settings:get())),
    ?assertEqual(["backup_io_limit = \"512MiB/s\""], ctl(["backup_io_limit", "512 mib/s"])),
    ?assertEqual(["backup_io_limit = \"2MB/s\""], ctl(["backup_io_limit", "2000000"])),
    Bad = [
        {"fast", "Error: backup_io_limit must be a read rate such as 50MB/s, or off, not \"fast\""},
        {"50MB/h", "Error: backup_io_limit must be a read rate such as 50MB/s, or off, not \"50MB/h\""},
        {"-5MB/s", "Error: backup_io_limit must be a read rate such as 50MB/s, or off, not \"-5MB/s\""},
        {"100kB/s", "Error: backup_io_limit must be at least 1MB/s (or off)"},
        {"5000GB/s", "Error: backup_io_limit must be at most 1000GB/s"}
    ],
    lists:foreach(fun({In, Line}) -> ?assertEqual([Line], ctl(["backup_io_limit", In])) end, Bad),
    %% nothing changed by the refused ones
    ?assertEqual(["backup_io_limit = \"2MB/s\""], ctl(["backup_io_limit"])),
    ?assertEqual(["backup_io_limit = \"off\" (verification reads at full speed, at the lowest CPU priority)"], ctl(["backup_io_limit", "OFF"])),
    %% the dashboard's form of it
    {error, Refused} = emqx_guard_settings:validate_changes(#{<<"backup_io_limit">> => <<"1B/s">>}),
    ?assertEqual(<<"backup_io_limit must be at least 1MB/s (or off)">>, emqx_guard_outcome:format_error(Refused)),
    ?assertEqual({ok, #{backup_io_limit => 1048576}}, emqx_guard_settings:validate_changes(#{<<"backup_io_limit">> => <<"1MiB/s">>})).

%% A records file that cannot be read is no records (every backup is read once more), with a
%% warning, never a crash.
damaged_records_file_means_verify_again(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    _ = [old_export(Dir, Day) || Day <- [1, 2]],
    [_ | _] = ctl(["backup_list"]),
    ?assertEqual(2, map_size(records())),
    stop_app(),
    ok = file:write_file(emqx_guard_verifications:file(), <<"{emqx_guard_verifications, 1, [#{name => ">>),
    start_app(fake_opts(#{})),
    ?assertEqual(#{}, records()),
    [_ | Rows] = ctl(["backup_list"]),
    ?assertEqual(2, length([R || R <- Rows, string:find(R, "  verified") =/= nomatch])),
    ?assertEqual(2, map_size(records())).

%% Retention that runs out of time (issue 19, defect 5). Eight earlier backups of 1 MiB with no
%% records (as after a damaged verified.eterm), keep 8, reads at 1 MiB/s and retention given 3 s:
%% the first run's backup is good, with a warning that says how far retention got and that it
%% goes on next time; each verdict it reached is recorded. The next run (retention's usual bound)
%% reads only the rest, nothing twice, and prunes.
slow_retention_continues_where_it_stopped(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    NewestFirst = lists:reverse([old_export(Dir, Day, 1024 * 1024) || Day <- lists:seq(1, 8)]),
    Request = #{trigger => manual, keep => 8, export_timeout => 30000, io_limit => 1024 * 1024},
    First = emqx_guard_run:run(Request#{retention_max_ms => 3000}, #{}),
    #{result := ok, file := New1, pruned := [], warnings := [Warning]} = First,
    ct:log("first run: ~ts", [Warning]),
    %% the new backup counts, so 7 of the earlier ones are needed
    Needed = lists:sublist(NewestFirst, 7),
    {match, [CheckedText]} = re:run(Warning, "^retention checked ([0-9]+) of 7 files", [{capture, all_but_first, list}]),
    Checked = list_to_integer(CheckedText),
    ?assert(Checked >= 1 andalso Checked < 7, Warning),
    Done = lists:sublist(Needed, Checked),
    ?assertEqual(
        iolist_to_binary([
            "retention checked ", CheckedText, " of 7 files (", emqx_guard_render:size(sizes(Done)), " of ",
            emqx_guard_render:size(sizes(Needed)), ") before its time ran out; it continues at the next run"
        ]),
        Warning
    ),
    ?assertEqual(sizes(Done), maps:get(retention_read, First)),
    %% each verdict reached is recorded, the new backup's too
    AfterFirst = records(),
    ?assertEqual(lists:sort(names([New1 | Done])), lists:sort(maps:keys(AfterFirst))),
    ?assertEqual([ok], lists:usort([R || #{result := R} <- maps:values(AfterFirst)])),
    ?assertEqual(9, length(emqx_guard_ct_helper:backups())),

    %% the next run: two new backups now, so 6 earlier ones are kept; only those not checked yet
    %% are read, and the two oldest go
    Second = emqx_guard_run:run(Request, #{}),
    #{result := ok, warnings := [], pruned := Pruned, retention_read := Read} = Second,
    Rest = lists:nthtail(Checked, lists:sublist(NewestFirst, 6)),
    ?assertEqual(sizes(Rest), Read),
    ?assertEqual(names(lists:reverse(lists:nthtail(6, NewestFirst))), Pruned),
    %% the records of the first run stay as they were (not read again)
    ?assertEqual(maps:with(names([New1 | Done]), AfterFirst), maps:with(names([New1 | Done]), records())),
    ?assertEqual(8, length(emqx_guard_ct_helper:backups())).

%% Retention has a time limit of its own (issue 19, defect 5), sized from what it has to read and
%% the io_limit, not the export's: export_timeout 1 s while retention reads four unrecorded
%% earlier backups of 1 MiB at 1 MiB/s (about 4 s). It finishes, with no warning, and prunes the
%% two oldest; before, it was cut off at the export's 1 s and pruned nothing.
retention_is_not_bound_by_the_export_timeout(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    NewestFirst = lists:reverse([old_export(Dir, Day, 1024 * 1024) || Day <- lists:seq(1, 6)]),
    Request = #{trigger => manual, keep => 5, export_timeout => 1000, io_limit => 1024 * 1024},
    Run = emqx_guard_run:run(Request, #{}),
    #{result := ok, warnings := Warnings, pruned := Pruned, retention_read := Read} = Run,
    ?assertEqual([], Warnings),
    {Kept, Gone} = lists:split(4, NewestFirst),
    ?assertEqual(sizes(Kept), Read),
    ?assertEqual(lists:sort(names(Gone)), lists:sort(Pruned)),
    ?assertEqual(5, length(emqx_guard_ct_helper:backups())).

%% The plugin stops while retention reads (1 MB/s, eight unrecorded backups of 1 MiB, keep 8):
%% the verdicts retention reached before are kept, and the next run goes on from there.
plugin_stop_mid_retention_keeps_its_verdicts(_Config) ->
    Dir = emqx_guard_emqx:backup_dir(),
    NewestFirst = lists:reverse([old_export(Dir, Day, 1024 * 1024) || Day <- lists:seq(1, 8)]),
    ["backup_keep = 8"] = ctl(["backup_keep", "8"]),
    ["backup_io_limit = \"1MB/s\""] = ctl(["backup_io_limit", "1MB/s"]),
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {self(), ctl(["backup_now"])} end),
    %% stopped as soon as retention has recorded the verdict of one earlier backup
    Earlier = fun() -> [N || N <- names(NewestFirst), maps:is_key(N, records())] end,
    ok = wait_until(fun() -> Earlier() =/= [] end),
    stop_app(),
    receive
        {Caller, _Answer} -> ok
    after 30000 -> ct:fail(backup_now_not_answered)
    end,
    %% what it had read, newest first, is still known after the restart; it had not finished
    start_app(fake_opts(#{})),
    Kept = Earlier(),
    Checked = length(Kept),
    ?assert(Checked >= 1 andalso Checked < 7, Kept),
    ?assertEqual(lists:sublist(names(NewestFirst), Checked), Kept),
    ?assertEqual(9, length(emqx_guard_ct_helper:backups())),
    %% the next run reads only what is left of the newest 6 earlier ones (two new backups count)
    {ok, Run} = emqx_guard_scheduler:run_now(),
    Rest = lists:nthtail(min(Checked, 6), lists:sublist(NewestFirst, 6)),
    ?assertEqual(sizes(Rest), maps:get(retention_read, Run)),
    ?assertEqual(names(lists:reverse(lists:nthtail(6, NewestFirst))), maps:get(pruned, Run)).

%%--------------------------------------------------------------------
%% helpers
%%--------------------------------------------------------------------

records() ->
    maps:from_list([{N, R} || R = #{name := N} <- emqx_guard_verifications:records()]).

names(Files) ->
    [iolist_to_binary(F) || F <- Files].

path(Name) ->
    filename:join(emqx_guard_emqx:backup_dir(), Name).

os_threads() ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    length(Tasks).

%% A valid export in EMQX's layout, as if made on 2025-01-Day, named as EMQX names it.
old_export(Dir, Day) ->
    old_export(Dir, Day, 0).

%% The same with a table of Bytes random bytes (the file is about that much bigger).
old_export(Dir, Day, Bytes) ->
    Base = lists:flatten(io_lib:format("emqx-export-2025-01-~2..0b-10-00-00.000", [Day])),
    Tar = filename:join(Dir, Base ++ ".tar.gz"),
    {ok, Fd} = erl_tar:open(Tar, [write, compressed]),
    ok = erl_tar:add(Fd, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Fd, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:add(Fd, term_to_binary({emqx_admin, Base}), Base ++ "/mnesia/emqx_admin", []),
    case Bytes of
        0 -> ok;
        _ -> ok = erl_tar:add(Fd, crypto:strong_rand_bytes(Bytes), Base ++ "/mnesia/emqx_big", [])
    end,
    ok = erl_tar:close(Fd),
    Base ++ ".tar.gz".

%% The total size of the named exports.
sizes(Names) ->
    lists:sum([filelib:file_size(path(N)) || N <- Names]).
