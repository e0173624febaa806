%% Common Test suite for off-site copies (issue 12), end to end through `emqx ctl guard': the
%% off-site queue that uploads after each run, `backup_remote', `backup_list --remote',
%% `backup_fetch', `backup_prune --dry-run', `backup_remote_prune --confirm', the alarm, against
%% real S3 servers on 127.0.0.1 (SigV4 on): every case runs twice, in the group `s3s' (s3s-fs) and
%% in the group `rclone' (`rclone serve s3', which answers ranged GETs with 200 and has no
%% UploadPartCopy), with real files and the EMQX stand-ins. A run hands
%% its backup over and returns: each case waits for the queue to be idle (`backup_status') before
%% it looks at the bucket. The queue's behaviour against a hanging or failing server, its
%% notifications and a node restart are in `emqx_guard_offsite_queue_SUITE'.
-module(emqx_guard_offsite_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([
    seven_runs_keep_five_remote/1,
    wrong_secret_key_warns_and_alarms/1,
    server_stopped_next_run_uploads_missing/1,
    fetch_round_trip/1,
    fetch_wrong_identity_writes_nothing/1,
    secrets_never_shown/1,
    bad_input_changes_nothing/1,
    rebuilt_node_keeps_the_remote_history/1,
    confirm_lets_retention_trim_the_history/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, backups/0]).

-define(ALARM, emqx_guard_offsite_failed).

all() ->
    [{group, Kind} || Kind <- emqx_guard_s3_helper:kinds()].

groups() ->
    [{Kind, [], cases()} || Kind <- emqx_guard_s3_helper:kinds()].

init_per_group(Kind, Config) ->
    [{s3_kind, Kind} | Config].

end_per_group(_Kind, _Config) ->
    ok.

cases() ->
    [
        seven_runs_keep_five_remote,
        wrong_secret_key_warns_and_alarms,
        server_stopped_next_run_uploads_missing,
        fetch_round_trip,
        fetch_wrong_identity_writes_nothing,
        secrets_never_shown,
        bad_input_changes_nothing,
        rebuilt_node_keeps_the_remote_history,
        confirm_lets_retention_trim_the_history
    ].

init_per_suite(Config) ->
    Config1 = emqx_guard_ct_helper:init_suite(Config),
    %% short waits between upload attempts, no retries inside the NIF, short connect timeout
    ok = application:set_env(emqx_guard, offsite_retry_ms, [50, 50]),
    %% a failed job is not tried again on its own during a case: the next run, or a settings
    %% change, starts the next one
    ok = application:set_env(emqx_guard, offsite_requeue_ms, [3600000]),
    ok = application:set_env(emqx_guard, offsite_extra, #{max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 20000}),
    case {emqx_guard_s3_helper:missing(), os:getenv("EMQX_GUARD_SKIP_S3")} of
        {[], _} -> Config1;
        {Missing, "1"} -> {skip, lists:flatten(["not installed (EMQX_GUARD_SKIP_S3=1): " | [H || {_, H} <- Missing]])};
        {Missing, _} -> ct:fail(lists:flatten(["S3 servers of the off-site tests not installed, run make test-deps: "
                                               | [H || {_, H} <- Missing]]))
    end.

end_per_suite(_Config) ->
    application:unset_env(emqx_guard, offsite_retry_ms),
    application:unset_env(emqx_guard, offsite_requeue_ms),
    application:unset_env(emqx_guard, offsite_extra),
    emqx:reset(),
    ok.

init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    set_now(erlang:system_time(millisecond)),
    start_app(fake_opts(#{})),
    S3 = emqx_guard_s3_helper:start(?config(s3_kind, Config1), ?config(data_dir, Config1)),
    [{s3, S3} | Config1].

end_per_testcase(_TC, Config) ->
    emqx_guard_s3_helper:stop(?config(s3, Config)),
    emqx_guard_ct_helper:end_case().

%%--------------------------------------------------------------------------------------------

%% Seven runs with backup_keep 5: five objects stay remotely (encrypted), the newest five; other
%% keys in the bucket (outside the prefix, under it but not export names, deeper) are never
%% touched; the remote listing and the dry run of retention show them.
seven_runs_keep_five_remote(Config) ->
    S3 = ?config(s3, Config),
    Foreign = [
        "ct/notes.txt",
        "other/emqx-export-2020-01-01-00-00-00.000.tar.gz",
        "ct/sub/emqx-export-2020-01-01-00-00-00.000.tar.gz",
        "emqx-export-2020-01-01-00-00-00.000.tar.gz"
    ],
    [ok = write(emqx_guard_s3_helper:object_file(S3, K), <<"not mine">>) || K <- Foreign],
    set_remote(Config, ["recipient=" ++ recipient(Config)]),
    Names = [run_ok() || _ <- lists:seq(1, 7)],
    Expected = lists:sort([N ++ ".age" || N <- lists:nthtail(2, Names)]),
    ?assertEqual(Expected, emqx_guard_s3_helper:objects(S3)),
    ?assertEqual(lists:nthtail(2, lists:sort(Names)), backups()),
    [?assertEqual({ok, <<"not mine">>}, file:read_file(emqx_guard_s3_helper:object_file(S3, K))) || K <- Foreign],
    [{ok, Stored} | _] = [file:read_file(emqx_guard_s3_helper:object_file(S3, "ct/" ++ E)) || E <- Expected],
    ?assertMatch(<<"age-encryption.org/v1\n", _/binary>>, Stored),
    [Head | Rows] = ctl(["backup_list", "--remote"]),
    ?assertMatch("5 off-site backup(s) in s3://backups/ct, newest first:", Head),
    ?assertEqual(5, length(Rows)),
    [?assertNotEqual(nomatch, string:find(R, "encrypted (age)")) || R <- Rows],
    ?assertNotEqual(nomatch, string:find(hd(Rows), lists:last(Names))),
    %% the same facts as one JSON document
    {ok, Remote} = emqx_guard_json:decode(unicode:characters_to_binary(lists:join("\n", ctl(["backup_list", "--remote", "--json"])))),
    #{<<"destination">> := <<"s3://backups/ct">>, <<"backups">> := Listed} = Remote,
    ?assertEqual(lists:reverse([list_to_binary(E) || E <- Expected]), [maps:get(<<"name">>, B) || B <- Listed]),
    ?assertEqual(lists:reverse([list_to_binary(N) || N <- lists:nthtail(2, Names)]), [maps:get(<<"export_name">>, B) || B <- Listed]),
    [?assertMatch(#{<<"encrypted">> := true, <<"size">> := Size, <<"mtime_ms">> := M, <<"mtime">> := <<_/binary>>}
                  when is_integer(Size) andalso is_integer(M), B) || B <- Listed],
    Status = ctl(["backup_status"]),
    ?assert(lists:any(fun(L) -> lists:prefix("  newest backup off-site: " ++ lists:last(Names) ++ ".age, uploaded at ", L) end, Status), Status),
    ?assert(lists:member("off-site: s3://backups/ct (encrypted with age)", Status), Status),
    %% with keep 3, a dry run shows the two oldest remote ones (and deletes nothing)
    ctl(["backup_keep", "3"]),
    Dry = ctl(["backup_prune", "--dry-run"]),
    ?assert(lists:member("Off-site retention (last=3) would delete 2 of the 5 backup(s) in s3://backups/ct "
                         "(dry run, nothing deleted):", Dry), Dry),
    ?assertEqual(Expected, emqx_guard_s3_helper:objects(S3)),
    ?assertEqual([], emqx_alarm:active_alarms()).

%% A wrong secret key: the run is ok, the off-site status shows a clear error, the alarm is
%% raised, the local backup stays. With the right key, the upload is made (the missed backup too)
%% and the alarm cleared.
wrong_secret_key_warns_and_alarms(Config) ->
    S3 = ?config(s3, Config),
    set_remote(Config, ["secret_key=WRONG-secret-value-9876543210"]),
    {Out, First} = run_lines(),
    ?assertMatch("Backup done in " ++ _, hd(Out)),
    offsite_idle(),
    Warning = [L || L <- ctl(["backup_status"]), lists:prefix("  last error: ", L),
                    string:find(L, ": upload of " ++ First ++ " failed: ") =/= nomatch],
    ?assertMatch([_], Warning, Out),
    ?assertEqual(nomatch, string:find(hd(Warning), "WRONG-secret")),
    ?assertEqual([First], backups()),
    ?assertEqual([], emqx_guard_s3_helper:objects(S3)),
    [#{name := ?ALARM, message := Msg}] = emqx_alarm:active_alarms(),
    ?assertMatch(<<"emqx_guard: off-site copy failed: upload of ", _/binary>>, Msg),
    %% alarms live in memory: a restarted plugin raises it again from the recorded last run
    emqx_guard_ct_helper:stop_app(),
    ok = emqx_alarm:reset(),
    start_app(fake_opts(#{})),
    ?assertMatch([#{name := ?ALARM, message := Msg}], emqx_alarm:active_alarms()),
    ?assert(lists:member("off-site: s3://backups/ct (not encrypted)", ctl(["backup_status"]))),
    set_remote(Config, []),
    Second = run_ok(),
    ?assertEqual([First, Second], emqx_guard_s3_helper:objects(S3)),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assert(lists:any(fun(#{name := N}) -> N =:= ?ALARM end, emqx_alarm:history())).

%% The server is down during a run: the run is ok, nothing is counted remotely; the next run (the
%% server back) uploads the missed backup and its own.
server_stopped_next_run_uploads_missing(Config) ->
    S3 = ?config(s3, Config),
    set_remote(Config, []),
    First = run_ok(),
    ok = emqx_guard_s3_helper:stop(S3),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Logs} = emqx_guard_test_logs:start(),
    {Out, Second} = run_lines(),
    offsite_idle(),
    Reports = emqx_guard_test_logs:reports(emqx_guard_test_logs:stop(Logs)),
    ok = logger:set_primary_config(level, Level),
    %% tried three times (the waits of offsite_retry_ms: 50 ms, 50 ms)
    ?assertMatch([#{reason := connect, wait_ms := 50}, #{wait_ms := 50}],
                 [R || R = #{msg := emqx_guard_offsite_retry} <- Reports]),
    ?assertMatch("Backup done in " ++ _, hd(Out)),
    Status = ctl(["backup_status"]),
    ?assert(lists:any(fun(L) -> lists:prefix("  last error: ", L) end, Status), Status),
    ?assertEqual([First], emqx_guard_s3_helper:objects(S3)),
    ?assertMatch([#{name := ?ALARM}], emqx_alarm:active_alarms()),
    S3b = emqx_guard_s3_helper:start(maps:get(kind, S3), ?config(data_dir, Config), maps:get(port, S3)),
    try
        Third = run_ok(),
        ?assertEqual([First, Second, Third], emqx_guard_s3_helper:objects(S3b)),
        ?assertEqual([], emqx_alarm:active_alarms())
    after
        emqx_guard_s3_helper:stop(S3b)
    end.

%% Encrypted upload, local copy lost, `backup_fetch' with the identity: the byte-identical export,
%% verified, under its own name in data/backup, with the import command printed.
fetch_round_trip(Config) ->
    set_remote(Config, ["recipient=" ++ recipient(Config)]),
    Name = run_ok(),
    Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
    {ok, Original} = file:read_file(Path),
    ok = file:delete(Path),
    Printed = ctl(["backup_fetch", Name ++ ".age", "identity=" ++ data_file(Config, "offsite_identity.txt")]),
    %% the download's steps first: the object found, then done
    ?assertMatch(["download: " ++ _, "download: done in " ++ _], emqx_guard_ct_helper:steps(Printed)),
    ?assertNotEqual(nomatch, string:find(hd(Printed), Name ++ ".age (")),
    ?assertNotEqual(nomatch, string:find(hd(Printed), ", encrypted) from s3://backups/ct")),
    Out = emqx_guard_ct_helper:result(Printed),
    ?assertMatch(["Fetched " ++ _, "  verified: EMQX 5.3.2 " ++ _, _], Out),
    ?assert(lists:suffix(" (checks: stored_sha256, age, export_sha256, verify)", lists:nth(2, Out)), Out),
    ?assertEqual("Restore it with: emqx ctl data import " ++ Name, lists:last(Out)),
    ?assertEqual({ok, Original}, file:read_file(Path)),
    ?assertMatch({ok, #{result := ok, version := <<"5.3.2">>}}, emqx_guard_backups:check(Path, off, 60000)),
    %% never overwrites
    ?assertMatch(["Error: a backup of that name is already in data/backup" ++ _],
                 emqx_guard_ct_helper:result(ctl(["backup_fetch", Name, "identity=" ++ data_file(Config, "offsite_identity.txt")]))),
    ?assertEqual({ok, Original}, file:read_file(Path)).

%% The wrong identity, or none for an encrypted object: a clear error, nothing in data/backup.
fetch_wrong_identity_writes_nothing(Config) ->
    set_remote(Config, ["recipient=" ++ recipient(Config)]),
    Name = run_ok(),
    ok = file:delete(filename:join(emqx_guard_emqx:backup_dir(), Name)),
    ?assertMatch(["Error: cannot decrypt" ++ _],
                 emqx_guard_ct_helper:result(ctl(["backup_fetch", Name, "identity=" ++ data_file(Config, "offsite_wrong_identity.txt")]))),
    ?assertMatch(["Error: cannot decrypt" ++ _], emqx_guard_ct_helper:result(ctl(["backup_fetch", Name]))),
    %% no export: only the plugins companion of the one deleted by hand is there
    ?assertEqual({ok, [binary_to_list(emqx_guard_companion:name(list_to_binary(Name)))]}, file:list_dir(emqx_guard_emqx:backup_dir())),
    ?assertMatch(["download: emqx-export-2020-01-01-00-00-00.000.tar.gz from s3://backups/ct",
                  "Error: no such off-site backup" ++ _],
                 ctl(["backup_fetch", "emqx-export-2020-01-01-00-00-00.000.tar.gz"])).

%% The secret key is in no command output, no log event and no `sys:get_status'.
secrets_never_shown(Config) ->
    Secret = binary_to_list(emqx_guard_s3_helper:secret_key()),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Logs} = emqx_guard_test_logs:start(),
    Set = set_remote(Config, ["recipient=" ++ recipient(Config)]),
    ?assert(lists:member("  secret_key = \"******\"", Set), Set),
    ?assert(lists:member("  access_key = \"guard-ct-access\"", Set), Set),
    Shown = ctl(["backup_remote"]),
    ?assertEqual(Set, Shown),
    _ = run_ok(),
    _ = ctl(["backup_list", "--remote"]),
    _ = ctl(["backup_status"]),
    %% a wrong secret key in an error and a crash-free failure path
    _ = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(?config(s3, Config)) ++ ["secret_key=x\ty"]]),
    Statuses = [sys:get_status(P) || P <- [emqx_guard_scheduler, emqx_guard_settings_sync, emqx_guard_notify,
                                           emqx_guard_offsite_queue]],
    Events = emqx_guard_test_logs:stop(Logs),
    ok = logger:set_primary_config(level, Level),
    %% the run and the settings change were logged (and the upload with them)
    Reports = emqx_guard_test_logs:reports(Events),
    ?assert(lists:any(fun(R) -> maps:get(msg, R, x) =:= emqx_guard_offsite_done end, Reports)),
    ?assert(lists:any(fun(R) -> maps:get(msg, R, x) =:= emqx_guard_settings_changed end, Reports)),
    Text = lists:flatten([io_lib:format("~tp", [E]) || E <- Events] ++ io_lib:format("~tp", [Statuses]) ++ Shown),
    ?assertEqual(nomatch, string:find(Text, Secret)),
    ?assertEqual(nomatch, string:find(Text, "SECRET/key")).

%% Bad input: one error line, nothing changes.
bad_input_changes_nothing(Config) ->
    S3 = ?config(s3, Config),
    Before = emqx_guard_ct_helper:settings_file_content(),
    Args = emqx_guard_s3_helper:settings_args(S3),
    Bad = [
        {["backup_remote", "s3", "bucket=b", "access_key=a"], "Error: backup_remote s3 needs secret_key=..."},
        {["backup_remote", "s3", "access_key=a", "secret_key=s"], "Error: backup_remote s3 needs bucket=..."},
        {["backup_remote" | Args ++ ["colour=blue"]], "Error: unknown key \"colour\""},
        {["backup_remote" | Args ++ ["secret_key=a\nb"]], "Error: backup_remote_secret_key must not contain"},
        {["backup_remote" | Args ++ ["recipient=ssh-ed25519"]], "Error: backup_remote_recipient must be an age"},
        {["backup_remote" | Args ++ ["endpoint=ftp://x"]], "Error: backup_remote_endpoint must be"},
        {["backup_remote" | Args ++ ["path_style=perhaps"]], "Error: backup_remote_path_style must be on or off"},
        {["backup_remote", "gcs"], "Error: expected backup_remote"},
        {["backup_list", "--remote"], "Error: no off-site destination is set"},
        {["backup_fetch", "x"], "Error: no off-site destination is set"}
    ],
    lists:foreach(
        fun({Cmd, Start}) ->
            Out = ctl(Cmd),
            ?assertMatch([_], Out, Cmd),
            ?assert(lists:prefix(Start, hd(Out)), {Cmd, Out})
        end,
        Bad
    ),
    %% as JSON: one document holding the line
    ?assertMatch({ok, #{<<"error">> := <<"no off-site destination is set", _/binary>>}},
                 emqx_guard_json:decode(unicode:characters_to_binary(lists:join("\n", ctl(["backup_list", "--remote", "--json"]))))),
    ?assertEqual(Before, emqx_guard_ct_helper:settings_file_content()),
    ?assertEqual(["backup_remote = off (backups stay on this cluster's disks only)"], ctl(["backup_remote"])),
    _ = set_remote(Config, []),
    ?assertEqual(["backup_remote = off (backups stay on this cluster's disks only)"], ctl(["backup_remote", "off"])).

%% Issue 19 defect 8: a rebuilt node (a fresh data dir, as after the README's restore-from-off-site
%% steps) finds three months of backups made by an earlier life in the bucket. Its first backup
%% is uploaded, but remote retention deletes none of them, and `backup_status' says why. Once
%% the node has uploaded `backup_keep' backups of its own, retention applies as usual.
rebuilt_node_keeps_the_remote_history(Config) ->
    S3 = ?config(s3, Config),
    Old = earlier_life(S3, 12),
    ["backup_keep = 2"] = ctl(["backup_keep", "2"]),
    set_remote(Config, []),
    %% a node without a backup of its own looks at the bucket as soon as it has the destination
    offsite_idle(),
    Before = ctl(["backup_status"]),
    ?assert(lists:member("  remote retention: paused: there are 12 backup(s) in the bucket that this node did not upload "
                         "(another node's, or its own from before its data/emqx_guard was lost); none is deleted until "
                         "this node has uploaded 2 of its own (0 so far), or after guard backup_remote_prune --confirm",
                         Before), Before),
    First = run_ok(),
    offsite_idle(),
    ?assertEqual(lists:sort(Old ++ [First]), emqx_guard_s3_helper:objects(S3)),
    Status = ctl(["backup_status"]),
    ?assert(lists:any(fun(L) -> lists:prefix("  remote retention: paused", L) end, Status), Status),
    ?assert(lists:any(fun(L) -> string:find(L, "12 backup(s) in the bucket that this node did not upload") =/= nomatch end,
                      Status), Status),
    %% the dry run says the same: nothing would be deleted off-site now
    Dry = ctl(["backup_prune", "--dry-run"]),
    ?assert(lists:any(fun(L) -> lists:prefix("Nothing is deleted off-site now: remote retention is paused", L) end, Dry), Dry),
    ?assertEqual(lists:sort(Old ++ [First]), emqx_guard_s3_helper:objects(S3)),
    %% a second backup of its own: the node's history has the length of backup_keep
    Second = run_ok(),
    offsite_idle(),
    ?assertEqual([First, Second], emqx_guard_s3_helper:objects(S3)),
    After = ctl(["backup_status"]),
    ?assertNot(lists:any(fun(L) -> lists:prefix("  remote retention: paused", L) end, After), After).

%% The operator may let retention trim the earlier history at once: `backup_remote_prune
%% --confirm'. The confirmation is kept across a restart of the plugin.
confirm_lets_retention_trim_the_history(Config) ->
    S3 = ?config(s3, Config),
    Old = earlier_life(S3, 12),
    ["backup_keep = 3"] = ctl(["backup_keep", "3"]),
    set_remote(Config, []),
    First = run_ok(),
    offsite_idle(),
    ?assertEqual(lists:sort(Old ++ [First]), emqx_guard_s3_helper:objects(S3)),
    ?assertMatch(["Error: " ++ _], ctl(["backup_remote_prune"])),
    ?assertMatch(["Error: " ++ _], ctl(["backup_remote_prune", "--yes"])),
    ?assertEqual(lists:sort(Old ++ [First]), emqx_guard_s3_helper:objects(S3)),
    [Confirmed | _] = ctl(["backup_remote_prune", "--confirm"]),
    ?assert(lists:prefix("Remote retention now applies to every backup in s3://backups/ct", Confirmed), Confirmed),
    offsite_idle(),
    ?assertEqual(lists:nthtail(10, lists:sort(Old)) ++ [First], emqx_guard_s3_helper:objects(S3)),
    emqx_guard_ct_helper:stop_app(),
    start_app(fake_opts(#{})),
    Second = run_ok(),
    offsite_idle(),
    ?assertEqual(lists:nthtail(11, lists:sort(Old)) ++ [First, Second], emqx_guard_s3_helper:objects(S3)).

%%--------------------------------------------------------------------------------------------

%% N weekly backups of an earlier life of this node (its data dir was lost) in the bucket, from
%% Sunday 2026-01-04 on: names only this node never uploaded.
earlier_life(S3, N) ->
    Names = [
        begin
            {{Y, Mo, D}, _} = calendar:gregorian_seconds_to_datetime(
                calendar:datetime_to_gregorian_seconds({{2026, 1, 4}, {12, 0, 0}}) + I * 7 * 86400),
            lists:flatten(io_lib:format("emqx-export-~4..0b-~2..0b-~2..0b-12-00-00.000.tar.gz", [Y, Mo, D]))
        end
     || I <- lists:seq(0, N - 1)
    ],
    [ok = write(emqx_guard_s3_helper:object_file(S3, "ct/" ++ Name), <<"made by an earlier life">>) || Name <- Names],
    ?assertEqual(Names, emqx_guard_s3_helper:objects(S3)),
    Names.

%% Waits until no off-site job is going (`backup_status' shows none in flight).
offsite_idle() ->
    emqx_guard_ct_helper:wait_until(fun() ->
        not lists:any(fun(L) -> lists:prefix("  uploads: uploading", L) orelse lists:prefix("  uploads: looking", L) end,
                      ctl(["backup_status"]))
    end).

set_remote(Config, Extra) ->
    Out = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(?config(s3, Config)) ++ Extra]),
    ?assertEqual("backup_remote = s3", hd(Out), Out),
    Out.

%% One `backup_now' that succeeds, and the off-site job after it: the new backup's name.
run_ok() ->
    {Out, Name} = run_lines(),
    ?assertMatch("Backup done in " ++ _, hd(Out)),
    ?assertEqual([], [L || L <- Out, string:find(L, "warning") =/= nomatch], Out),
    offsite_idle(),
    Name.

run_lines() ->
    Out = emqx_guard_ct_helper:result(ctl(["backup_now"])),
    ["  file: " ++ Path] = [L || "  file: " ++ _ = L <- Out],
    {Out, filename:basename(Path)}.

recipient(Config) ->
    {ok, R} = file:read_file(data_file(Config, "offsite_recipient.txt")),
    binary_to_list(string:trim(R)).

%% The test-only age keys live with the NIF suite.
data_file(_Config, Name) ->
    filename:join([filename:dirname(?FILE), "emqx_guard_nif_SUITE_data", Name]).

write(Path, Bin) ->
    ok = filelib:ensure_dir(Path),
    file:write_file(Path, Bin).
