%% Common Test suite for the `emqx ctl guard ...' commands, driven through the
%% emqx_ctl stand-in exactly as the `emqx ctl' shell does (arguments as
%% charlists, the `usage' atom), with the printed text captured and asserted.
%% Also: settings persistence across an app restart, a damaged settings file,
%% the dashboard callbacks, and an EMQX without data export.
-module(emqx_guard_cli_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    usage_atom_and_help_listing/1,
    unknown_command_prints_usage/1,
    show_default_cron/1,
    show_cron_in_zone_with_offsets/1,
    set_cron_quoted/1,
    set_cron_split_by_shell/1,
    glob_expanded_cron_is_refused/1,
    invalid_cron_changes_nothing/1,
    keep_show_set_reject/1,
    timezone_show_set_reject/1,
    catchup_show_set_reject/1,
    backup_now_prints_result/1,
    backup_now_prints_steps_as_they_come/1,
    status_and_list_as_json/1,
    relative_data_dir_shows_absolute_paths/1,
    backup_now_refused_while_running/1,
    backup_now_failure_modes/1,
    backup_list_newest_first/1,
    prune_dry_run_deletes_nothing/1,
    status_shows_everything/1,
    settings_persist_across_restart/1,
    damaged_settings_file_gives_defaults/1,
    command_registered_and_unregistered/1,
    never_crashes/1,
    on_config_changed_validates_and_applies/1,
    dashboard_errors_never_show_secrets/1,
    export_unsupported_still_starts/1
]).

-import(emqx_guard_ct_helper, [
    fake_opts/1, start_app/1, stop_app/0, set_now/1, utc/1, ctl/1, result/1, steps/1, wait_until/1, wait_idle/0, backups/0,
    settings_file_content/0
]).

-define(ALARM, emqx_guard_backup_failed).
%% Wednesday 2026-11-25 10:00:00 UTC
-define(T0, {{2026, 11, 25}, {10, 0, 0}}).
-define(FIRE_RE, "^  [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:00 [+-][0-9]{2}:[0-9]{2}$").

all() ->
    [
        usage_atom_and_help_listing,
        unknown_command_prints_usage,
        show_default_cron,
        show_cron_in_zone_with_offsets,
        set_cron_quoted,
        set_cron_split_by_shell,
        glob_expanded_cron_is_refused,
        invalid_cron_changes_nothing,
        keep_show_set_reject,
        timezone_show_set_reject,
        catchup_show_set_reject,
        backup_now_prints_result,
        backup_now_prints_steps_as_they_come,
        status_and_list_as_json,
        relative_data_dir_shows_absolute_paths,
        backup_now_refused_while_running,
        backup_now_failure_modes,
        backup_list_newest_first,
        prune_dry_run_deletes_nothing,
        status_shows_everything,
        settings_persist_across_restart,
        damaged_settings_file_gives_defaults,
        command_registered_and_unregistered,
        never_crashes,
        on_config_changed_validates_and_applies,
        dashboard_errors_never_show_secrets,
        export_unsupported_still_starts
    ].

init_per_suite(Config) ->
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(relative_data_dir_shows_absolute_paths = TC, Config) ->
    %% as EMQX 5.3.2 run from its tarball install: data_dir is the relative "data", resolved
    %% against the node's working directory
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    {ok, Cwd} = file:get_cwd(),
    ok = file:set_cwd(?config(data_dir, Config1)),
    ok = emqx:set_data_dir("data"),
    set_now(?T0),
    start_app(fake_opts(#{})),
    [{old_cwd, Cwd} | Config1];
init_per_testcase(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    set_now(?T0),
    case TC of
        export_unsupported_still_starts -> ok;
        damaged_settings_file_gives_defaults -> ok;
        _ -> start_app(fake_opts(#{}))
    end,
    Config1.

end_per_testcase(_TC, Config) ->
    case ?config(old_cwd, Config) of
        undefined -> ok;
        Cwd -> ok = file:set_cwd(Cwd)
    end,
    emqx_guard_ct_helper:end_case().

%%--------------------------------------------------------------------

usage_atom_and_help_listing(_Config) ->
    {ok, Usage} = emqx_guard_test_io:capture(fun() -> emqx_guard_cli:cmd(usage) end),
    Lines = string:split(Usage, "\n", all),
    Commands = [
        "guard backup_cron", "guard backup_keep", "guard backup_timezone", "guard backup_catchup",
        "guard backup_now", "guard backup_list", "guard backup_status", "guard backup_prune --dry-run"
    ],
    lists:foreach(
        fun(C) -> ?assert(lists:any(fun(L) -> lists:prefix(C, L) end, Lines), {missing, C, Usage}) end,
        Commands
    ),
    %% padded command column, then `# Description', as emqx_ctl:usage/1 prints it
    ?assert(lists:all(fun(L) -> L =:= "" orelse string:find(L, " # ") =/= nomatch end, Lines), Usage),
    %% the help listing of `emqx ctl' calls us with the atom, outside any try
    {_, Help} = emqx_guard_test_io:capture(fun() -> emqx_ctl:run_command([]) end),
    ?assertNotEqual(nomatch, string:find(Help, "guard backup_status")),
    %% `emqx ctl guard' alone prints the same usage
    ?assertEqual([L || L <- Lines, L =/= ""], ctl([])).

unknown_command_prints_usage(_Config) ->
    Lines = ctl(["backup_restore_everything"]),
    ?assert(lists:any(fun(L) -> lists:prefix("guard backup_now", L) end, Lines)),
    ?assertEqual(Lines, ctl(["backup_prune"])),
    %% two words are one policy, refused in one line
    ?assertEqual(["Error: backup_keep: \"1\" is not a rule: write each rule as name=value, e.g. daily=7 (a bare "
                  "number N alone means last=N)"], ctl(["backup_keep", "1", "2"])).

show_default_cron(_Config) ->
    [First, Zone, Meaning, Next | Fires] = ctl(["backup_cron"]),
    ?assertEqual("backup_cron = \"0 12 * * 0\"", First),
    ?assertMatch("zone: local" ++ _, Zone),
    ?assertEqual("meaning: At 12:00, on Sunday", Meaning),
    ?assertEqual("next fires:", Next),
    ?assertEqual(3, length(Fires)),
    lists:foreach(fun(F) -> ?assertMatch({match, _}, re:run(F, ?FIRE_RE)) end, Fires).

show_cron_in_zone_with_offsets(_Config) ->
    [_ | _] = ctl(["backup_timezone", "Europe/Berlin"]),
    ?assertEqual(
        [
            "backup_cron = \"0 12 * * 0\"",
            "zone: Europe/Berlin",
            "meaning: At 12:00, on Sunday",
            "next fires:",
            "  2026-11-29 12:00:00 +01:00",
            "  2026-12-06 12:00:00 +01:00",
            "  2026-12-13 12:00:00 +01:00"
        ],
        ctl(["backup_cron"])
    ),
    %% across the spring DST change the offset changes with the instant
    set_now({{2027, 3, 20}, {0, 0, 0}}),
    ?assertEqual(
        ["  2027-03-21 12:00:00 +01:00", "  2027-03-28 12:00:00 +02:00", "  2027-04-04 12:00:00 +02:00"],
        lists:nthtail(4, ctl(["backup_cron"]))
    ).

set_cron_quoted(_Config) ->
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    Lines = ctl(["backup_cron", "30 2 * * *"]),
    ?assertMatch(["backup_cron = \"30 2 * * *\"", "zone: UTC", "meaning: " ++ _ | _], Lines),
    ?assertEqual("backup_cron = \"30 2 * * *\"", hd(Lines)),
    ?assertEqual(
        ["next fires:", "  2026-11-26 02:30:00 +00:00", "  2026-11-27 02:30:00 +00:00", "  2026-11-28 02:30:00 +00:00"],
        lists:nthtail(3, Lines)
    ),
    %% stored, and the scheduler was re-armed at once
    ?assertEqual(<<"30 2 * * *">>, maps:get(backup_cron, emqx_guard_settings:load())),
    ?assertEqual(utc({{2026, 11, 26}, {2, 30, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())).

set_cron_split_by_shell(_Config) ->
    %% unquoted: the shell split it (and `*' matched no file, so it stayed)
    Lines = ctl(["backup_cron", "0", "3", "*", "*", "mon-fri"]),
    ?assertEqual("backup_cron = \"0 3 * * mon-fri\"", hd(Lines)),
    ?assertEqual(<<"0 3 * * mon-fri">>, maps:get(backup_cron, emqx_guard_settings:load())),
    %% extra blanks inside a quoted argument are normalized
    ?assertEqual("backup_cron = \"*/15 * * * *\"", hd(ctl(["backup_cron", "  */15   *  * * * "]))).

glob_expanded_cron_is_refused(_Config) ->
    Before = settings_file_content(),
    Globbed = ["0", "12", "bin", "data", "etc", "lib", "log", "releases", "0"],
    [Line] = ctl(["backup_cron" | Globbed]),
    ?assertMatch("Error: " ++ _, Line),
    ?assertNotEqual(nomatch, string:find(Line, "single quotes")),
    [Line2] = ctl(["backup_cron", "0", "12", "README.md", "*", "0"]),
    ?assertMatch("Error: " ++ _, Line2),
    %% five parts where one `*' became a plain file name that passes for a cron value: the
    %% field error still says to quote the expression
    [Line3] = ctl(["backup_cron", "0", "12", "x", "*", "0"]),
    ?assertMatch("Error: " ++ _, Line3),
    ?assertNotEqual(nomatch, string:find(Line3, "single quotes"), Line3),
    %% one (quoted) argument: the error is about the expression alone
    [Line4] = ctl(["backup_cron", "0 12 x * 0"]),
    ?assertEqual(nomatch, string:find(Line4, "single quotes"), Line4),
    ?assertEqual(Before, settings_file_content()),
    ?assertEqual("backup_cron = \"0 12 * * 0\"", hd(ctl(["backup_cron"]))).

invalid_cron_changes_nothing(_Config) ->
    [_ | _] = ctl(["backup_cron", "15 4 * * *"]),
    Before = settings_file_content(),
    NextBefore = maps:get(next_fire, emqx_guard_scheduler:status()),
    Bad = ["0 12 * * 0 2026", "61 * * * *", "0 12 ? * MON", "@reboot", "", "0 0 30 2 *", "5-1 * * * *"],
    lists:foreach(
        fun(Expr) ->
            Lines = ctl(["backup_cron", Expr]),
            ?assertMatch(["Error: " ++ _], Lines, Expr)
        end,
        Bad
    ),
    ["Error: " ++ Why] = ctl(["backup_cron", "0 12 * * 0 2026"]),
    ?assertNotEqual(nomatch, string:find(Why, "minute resolution")),
    ?assertEqual(Before, settings_file_content()),
    ?assertEqual(NextBefore, maps:get(next_fire, emqx_guard_scheduler:status())),
    ?assertEqual("backup_cron = \"15 4 * * *\"", hd(ctl(["backup_cron"]))).

keep_show_set_reject(_Config) ->
    ?assertEqual(["backup_keep = 5"], ctl(["backup_keep"])),
    ?assertEqual(["backup_keep = 12"], ctl(["backup_keep", "12"])),
    Before = settings_file_content(),
    ?assertEqual(["Error: backup_keep: \"0\" keeps nothing: at least one rule must be above zero, e.g. last=5"],
                 ctl(["backup_keep", "0"])),
    ?assertEqual(["Error: backup_keep: \"100001\": last takes a whole number from 0 to 100000, e.g. last=5"],
                 ctl(["backup_keep", "100001"])),
    ?assertMatch(["Error: backup_keep: \"ten\" is not a rule" ++ _], ctl(["backup_keep", "ten"])),
    ?assertEqual(Before, settings_file_content()),
    ?assertEqual(["backup_keep = 12"], ctl(["backup_keep"])).

timezone_show_set_reject(_Config) ->
    [Show | _] = ctl(["backup_timezone"]),
    ?assertMatch("backup_timezone = \"local\"" ++ _, Show),
    Lines = ctl(["backup_timezone", "Asia/Kolkata"]),
    ?assertEqual(
        [
            "backup_timezone = \"Asia/Kolkata\"",
            "next fires:",
            "  2026-11-29 12:00:00 +05:30",
            "  2026-12-06 12:00:00 +05:30",
            "  2026-12-13 12:00:00 +05:30"
        ],
        Lines
    ),
    ?assertEqual(utc({{2026, 11, 29}, {6, 30, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    Before = settings_file_content(),
    ["Error: " ++ Why] = ctl(["backup_timezone", "Mars/Olympus_Mons"]),
    ?assertNotEqual(nomatch, string:find(Why, "Mars/Olympus_Mons")),
    ?assertEqual(Before, settings_file_content()).

catchup_show_set_reject(_Config) ->
    ?assertEqual(["backup_catchup = \"24h\""], ctl(["backup_catchup"])),
    ?assertEqual(["backup_catchup = \"90m\""], ctl(["backup_catchup", "90m"])),
    ?assertEqual(5400, maps:get(backup_catchup, emqx_guard_settings:load())),
    ?assertEqual(["backup_catchup = \"0\" (off: missed backups are not run at start)"], ctl(["backup_catchup", "0"])),
    Before = settings_file_content(),
    ?assertMatch(["Error: backup_catchup must be a duration" ++ _], ctl(["backup_catchup", "a while"])),
    ?assertEqual(Before, settings_file_content()).

backup_now_prints_result(_Config) ->
    Out = ctl(["backup_now"]),
    [Done, File, Size, Sha, Pruned] = result(Out),
    ?assertMatch("Backup done in " ++ _, Done),
    %% first each step as it started and ended, EMQX's own lines of its export among them
    Steps = steps(Out),
    ?assertMatch(["export: started (EMQX data export)", "export: Exporting data to " ++ _ | _], Steps),
    Order = ["export: done in ", "protect: done: mode 0600", "verify: reading ", "verify: done in ", "prune: started: keeps the newest 5",
             "prune: done in ", "copy: no other running core node to copy to"],
    Found = [string:str(lists:flatten(lists:join("\n", Steps)), P) || P <- Order],
    ?assert(lists:all(fun(At) -> At > 0 end, Found), {Order, Steps}),
    ?assertEqual(Found, lists:sort(Found), Steps),
    ?assert(lists:any(fun(L) -> string:find(L, ": verified, ") =/= nomatch andalso lists:suffix("/s", L) end, Steps), Steps),
    [Name] = backups(),
    Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
    ?assertEqual("  file: " ++ Path, File),
    ?assertEqual("  size: " ++ binary_to_list(emqx_guard_render:size(filelib:file_size(Path))), Size),
    {ok, Bytes} = file:read_file(Path),
    ?assertEqual("  sha256: " ++ string:lowercase(binary_to_list(binary:encode_hex(crypto:hash(sha256, Bytes)))), Sha),
    ?assertEqual("  pruned: 0 old backup(s)", Pruned),
    {ok, #file_info{mode = Mode}} = file:read_file_info(Path),
    ?assertEqual(8#600, Mode band 8#777).

%% `guard backup_now' prints each step as it starts and ends while the run goes, not one block at
%% the end: a 3 MB export read back at 1 MB/s (`backup_io_limit') shows its verify step's start
%% seconds before its end, with progress lines between them at most once a second; then the
%% result. `backup_verify --all' prints each file's read the same way.
backup_now_prints_steps_as_they_come(_Config) ->
    ["backup_io_limit = \"1MB/s\""] = ctl(["backup_io_limit", "1MB/s"]),
    ok = emqx_mgmt_data_backup:set_mode({big, 3000000}),
    {ok, Timed} = emqx_guard_test_io:capture_timed(fun() -> emqx_ctl:run_command(["guard", "backup_now"]) end),
    Lines = [L || {_, L} <- Timed],
    ct:pal("~p", [Timed]),
    ["Backup done in " ++ _ | _] = result(Lines),
    At = fun(Prefix) -> [T || {T, L} <- Timed, lists:prefix(Prefix, L)] end,
    [ExportStarted] = At("export: started"),
    [ExportDone] = At("export: done in "),
    [VerifyStarted] = At("verify: reading "),
    [VerifyDone] = At("verify: done in "),
    [Done] = At("Backup done in "),
    ?assert(ExportStarted =< ExportDone andalso ExportDone =< VerifyStarted andalso VerifyDone =< Done),
    %% printed as it came: the read of 3 MB at 1 MB/s took seconds after its start was shown
    ?assert(VerifyDone - VerifyStarted >= 1500, Timed),
    Progress = At("verify: still reading after "),
    ?assertMatch([_ | _], Progress, Lines),
    ?assert(lists:all(fun(T) -> T > VerifyStarted andalso T < VerifyDone end, Progress), Timed),
    %% at most one a second
    ?assert(length(Progress) =< (VerifyDone - VerifyStarted) div 1000 + 1, Timed),
    ?assert(lists:all(fun({A, B}) -> B - A >= 500 end, lists:zip(lists:droplast(Progress), tl(Progress))), Timed),
    ?assertMatch([_], [L || L <- Lines, lists:prefix("verify: done in ", L), string:find(L, ": verified, 2.9 MiB at ") =/= nomatch]),
    %% a full check of every backup: each file's read as it goes, then the summary
    {ok, Verified} = emqx_guard_test_io:capture_timed(fun() -> emqx_ctl:run_command(["guard", "backup_verify", "--all"]) end),
    VLines = [L || {_, L} <- Verified],
    ?assertMatch(["verify: reading emqx-export-" ++ _ | _], VLines),
    ?assertNotEqual(nomatch, string:find(hd(VLines), " (1 of 1, 2.9 MiB) in full")),
    ?assertMatch([_ | _], [L || L <- VLines, lists:prefix("verify: emqx-export-", L), string:find(L, ": still reading after ") =/= nomatch]),
    ?assertMatch(["Read 1 backup(s) in " ++ _, "  emqx-export-" ++ _], result(VLines)).

%% `--json': one JSON document with the facts the text shows, under the keys the README lists.
status_and_list_as_json(_Config) ->
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
    ["Error: " ++ _ | _] = result(ctl(["backup_now"])),
    Text = ctl(["backup_status"]),
    Status = json(ctl(["backup_status", "--json"])),
    #{<<"schedule">> := #{<<"cron">> := <<"0 12 * * 0">>, <<"zone">> := <<"UTC">>, <<"keep">> := 5, <<"catchup">> := <<"24h">>,
                          <<"description">> := <<"At 12:00, on Sunday">>},
      <<"next_fire">> := <<"2026-11-29T12:00:00+00:00">>, <<"next_fire_ms">> := Next, <<"next_fire_error">> := null,
      <<"running">> := null, <<"offsite">> := null, <<"leftovers">> := [], <<"notifications">> := [],
      <<"runs">> := #{<<"ok">> := 1, <<"failed">> := 1, <<"skipped">> := 0},
      <<"last_run">> := LastRun, <<"cluster">> := null, <<"last_skip">> := null} = Status,
    ?assertEqual(maps:get(next_fire, emqx_guard_scheduler:status()), Next),
    #{<<"result">> := <<"failed">>, <<"trigger">> := <<"manual">>, <<"error">> := Error, <<"started_at">> := Started,
      <<"duration_ms">> := Took} = LastRun,
    ?assert(lists:member("  error: " ++ binary_to_list(Error), Text), Text),
    ?assert(lists:any(fun(L) -> lists:prefix("last run: " ++ binary_to_list(binary:replace(binary:part(Started, 0, 19), <<"T">>, <<" ">>)), L) end, Text)),
    ?assert(is_integer(Took)),
    ?assert(lists:member("runs: 1 ok, 1 failed, 0 skipped", Text)),
    %% the list: the same backups, newest first, with their verdicts
    [Good] = backups(),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    ok = file:write_file(filename:join(emqx_guard_emqx:backup_dir(), Good), <<"garbage">>),
    [_Header | Rows] = ctl(["backup_list"]),
    #{<<"dir">> := Dir, <<"backups">> := Listed} = json(ctl(["backup_list", "--json"])),
    ?assertEqual(list_to_binary(emqx_guard_emqx:backup_dir()), Dir),
    ?assertEqual([list_to_binary(N) || N <- lists:reverse(backups())], [maps:get(<<"name">>, B) || B <- Listed]),
    [Newest, Damaged] = Listed,
    ?assertMatch(#{<<"state">> := <<"verified">>, <<"error">> := null, <<"checked_at">> := <<_/binary>>}, Newest),
    ?assertMatch(#{<<"state">> := <<"not_verified">>, <<"error">> := <<_/binary>>, <<"size">> := 7}, Damaged),
    ?assertEqual(filename:join(Dir, maps:get(<<"name">>, Newest)), maps:get(<<"path">>, Newest)),
    ?assertNotEqual(nomatch, string:find(lists:last(Rows), "NOT VERIFIED: " ++ binary_to_list(maps:get(<<"error">>, Damaged)))),
    %% an error is a document too
    ?assertEqual(#{<<"error">> => <<"no off-site destination is set (see guard backup_remote)">>},
                 json(ctl(["backup_list", "--remote", "--json"]))).

json(Lines) ->
    {ok, Doc} = emqx_guard_json:decode(unicode:characters_to_binary(lists:join("\n", Lines))),
    Doc.

%% The stand-ins answer as the real 5.3.2 node: a relative data_dir and a relative export name.
%% What `guard backup_now' and `guard backup_status' print is the absolute path.
relative_data_dir_shows_absolute_paths(Config) ->
    ?assertEqual("data", emqx:data_dir()),
    {ok, #{filename := RelName}} = emqx_mgmt_data_backup:export(),
    ?assertEqual(relative, filename:pathtype(RelName)),
    ok = file:delete(RelName),
    Abs = filename:join(?config(data_dir, Config), "data"),
    ?assertEqual(Abs, emqx_guard_emqx:data_dir()),
    [Done, File | _] = result(ctl(["backup_now"])),
    ?assertMatch("Backup done in " ++ _, Done),
    [Name] = backups(),
    Path = filename:join([Abs, "backup", Name]),
    ?assert(filelib:is_regular(Path)),
    ?assertEqual("  file: " ++ Path, File),
    Status = ctl(["backup_status"]),
    ct:pal("~p", [Status]),
    ?assert(lists:any(fun(L) -> string:find(L, Path) =/= nomatch end, Status), Status),
    %% no line shows a relative path
    ?assertEqual([], [L || L <- Status ++ [File], string:find(L, " data/") =/= nomatch]).

backup_now_refused_while_running(_Config) ->
    %% EMQX 5.8.5+ writes the export into the run's own staging directory: while it is made it is
    %% not in the backup directory at all, so not listed
    Broken = filename:join(emqx_guard_emqx:backup_dir(), "emqx-export-2026-01-01-00-00-00.000.tar.gz"),
    refused_while_running(Broken, fun() ->
        ["1 backup(s) in " ++ _, BrokenLine] = ctl(["backup_list"]),
        ?assertNotEqual(nomatch, string:find(BrokenLine, "NOT VERIFIED: "), BrokenLine)
    end),
    %% EMQX 5.1-5.8.4 writes it into the backup directory: the export still being written while
    %% the run goes on is listed as such, while a broken file that nothing writes to any more is
    %% still shown as not verified
    ok = emqx_guard_export_standin:as_before_5_8_5(),
    try
        refused_while_running(Broken, fun() ->
            %% the first phase's backup, the broken file, the export being written
            wait_until(fun() -> length([N || N <- backups(), lists:suffix(".tar.gz", N)]) =:= 3 end),
            ["3 backup(s) in " ++ _ | Lines] = ctl(["backup_list"]),
            [WritingLine] = [L || L <- Lines, string:find(L, "being written by the running backup") =/= nomatch],
            [BrokenLine] = [L || L <- Lines, string:find(L, "NOT VERIFIED: ") =/= nomatch],
            ?assertNotEqual(nomatch, string:find(BrokenLine, filename:basename(Broken)), BrokenLine),
            ?assertEqual(nomatch, string:find(WritingLine, filename:basename(Broken)), WritingLine)
        end)
    after
        ok = emqx_guard_export_standin:as_built()
    end,
    ?assertEqual(2, emqx_mgmt_data_backup:export_count()),
    ?assertEqual(2, length(backups())).

refused_while_running(Broken, WhileRunning) ->
    ok = emqx_mgmt_data_backup:set_mode({hang, 2000}),
    Self = self(),
    _ = spawn_link(fun() -> Self ! {first, emqx_guard_test_io:capture(fun() -> emqx_guard_cli:cmd(["backup_now"]) end)} end),
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =/= undefined end),
    [Refused] = ctl(["backup_now"]),
    ?assertMatch("Error: a backup is already running (started 2026-11-25 " ++ _, Refused),
    ?assertNotEqual(nomatch, string:find(Refused, "not starting another one")),
    ok = file:write_file(Broken, <<31, 139, 8, 0>>),
    ok = file:change_time(Broken, calendar:system_time_to_local_time(erlang:system_time(second) - 3600, second)),
    WhileRunning(),
    ok = file:delete(Broken),
    receive
        {first, {ok, Out}} -> ?assertNotEqual(nomatch, string:find(Out, "Backup done in"))
    after 30000 -> error(first_backup_never_finished)
    end.

backup_now_failure_modes(_Config) ->
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    Good = backups(),
    {ok, _} = emqx_guard_settings_sync:update_local(#{export_timeout => 1}),
    Modes = [
        {{error, econnrefused}, "export failed"},
        {raise, "export failed: permission denied in "},
        {partial, "export failed"},
        {partial_raise, "export crashed"},
        {disk_full, "no space left on device"},
        {{hang, 3000}, "timed out"},
        {wrong_top_dir, "verification failed"},
        {empty_file, "verification failed"}
    ],
    lists:foreach(
        fun({Mode, Expect}) ->
            ok = emqx_mgmt_data_backup:set_mode(Mode),
            Out = ctl(["backup_now"]),
            [Error, Kept] = result(Out),
            ?assertMatch("Error: backup failed after " ++ _, Error, Mode),
            %% the step that failed says it as it ends
            [FailedStep] = [L || L <- steps(Out), string:find(L, ": FAILED after ") =/= nomatch],
            ?assertNotEqual(nomatch, string:find(FailedStep, Expect), {Mode, FailedStep}),
            ?assertNotEqual(nomatch, string:find(Error, Expect), {Mode, Error}),
            ?assertEqual("Earlier backups were kept.", Kept),
            %% the earlier backup is still there, the failed run's file is gone
            ?assertEqual(Good, backups(), Mode),
            ?assertMatch([#{name := ?ALARM}], emqx_alarm:active_alarms(), Mode),
            ?assertMatch({error, _}, emqx_guard_app:on_health_check(#{}))
        end,
        Modes
    ),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    ?assertEqual([], emqx_alarm:active_alarms()),
    ?assertEqual(ok, emqx_guard_app:on_health_check(#{})),
    Status = ctl(["backup_status"]),
    ?assert(lists:member("runs: 2 ok, 8 failed, 0 skipped", Status), Status).

backup_list_newest_first(_Config) ->
    ?assertMatch(["No backups in " ++ _], ctl(["backup_list"])),
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    lists:foreach(fun(_) -> ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])) end, [1, 2, 3]),
    %% an upload with any name is not a backup
    ok = file:write_file(filename:join(emqx_guard_emqx:backup_dir(), "my-upload.tar.gz"), <<"x">>),
    [Header | Rows] = ctl(["backup_list"]),
    ?assertMatch("3 backup(s) in " ++ _, Header),
    Names = [hd(string:lexemes(R, " ")) || R <- Rows],
    ?assertEqual(lists:reverse(backups()), Names),
    lists:foreach(
        fun(R) ->
            ?assertMatch(
                {match, _},
                re:run(R, "  [0-9.]+ KiB  [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} \\+00:00  verified "
                          "\\(checked [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} \\+00:00\\)  with plugins$"),
                R
            )
        end,
        Rows
    ),
    %% a damaged file shows as not verified
    Oldest = filename:join(emqx_guard_emqx:backup_dir(), hd(backups())),
    ok = file:write_file(Oldest, <<"garbage">>),
    Rows2 = tl(ctl(["backup_list"])),
    ?assertNotEqual(nomatch, string:find(lists:last(Rows2), "NOT VERIFIED: ")).

prune_dry_run_deletes_nothing(_Config) ->
    [Empty] = ctl(["backup_prune", "--dry-run"]),
    ?assert(lists:prefix("Retention here (last=5) deletes nothing of the 0 backup(s) in ", Empty), Empty),
    lists:foreach(fun(_) -> ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])) end, [1, 2, 3]),
    All = backups(),
    ["backup_keep = 1"] = ctl(["backup_keep", "1"]),
    [Header | Rows] = ctl(["backup_prune", "--dry-run"]),
    ?assertMatch("Retention here (last=1) would delete 2 of the 3 backup(s) in " ++ _, Header),
    ?assert(lists:suffix(" (dry run, nothing deleted):", Header), Header),
    %% every backup, newest first: name, size, time, then what becomes of it
    ?assertEqual(lists:reverse(All), [hd(string:lexemes(R, " ")) || R <- Rows]),
    ?assertEqual(["last #1", "delete", "delete"], [lists:last(string:split(R, "  ", all)) || R <- Rows]),
    %% a newer export-named file that does not verify is neither counted nor deleted, and said so
    Junk = "emqx-export-2099-01-01-00-00-00.000.tar.gz",
    ok = file:write_file(filename:join(emqx_guard_emqx:backup_dir(), Junk), <<"not a tarball">>),
    [Header2, JunkRow | Rows2] = ctl(["backup_prune", "--dry-run"]),
    ?assertMatch("Retention here (last=1) would delete 2 of the 4 backup(s) in " ++ _, Header2),
    ?assertEqual(Rows, Rows2),
    ?assertNotEqual(nomatch, string:prefix(JunkRow, "  " ++ Junk ++ "  ")),
    ?assertNotEqual(nomatch, string:find(JunkRow, "  unverified: kept, counts for nothing (")),
    ?assertEqual(lists:sort([Junk | All]), backups()).

status_shows_everything(_Config) ->
    [_ | _] = ctl(["backup_timezone", "UTC"]),
    Fresh = ctl(["backup_status"]),
    ?assertEqual(
        [
            "schedule: \"0 12 * * 0\" (At 12:00, on Sunday)",
            "zone: UTC",
            "keep: 5 newest, catch-up window: 24h",
            "next fire: 2026-11-29 12:00:00 +00:00",
            "state: idle",
            "last run: none yet",
            "runs: 0 ok, 0 failed, 0 skipped"
        ],
        Fresh
    ),
    ok = emqx_mgmt_data_backup:set_mode({error, <<"mnesia is overloaded">>}),
    ["Error: " ++ _, _] = result(ctl(["backup_now"])),
    [_, _, _, _, State, LastRun, ErrorLine, Runs] = ctl(["backup_status"]),
    ?assertEqual("state: idle", State),
    ?assertMatch({match, _}, re:run(LastRun, "^last run: 2026-11-25 10:00:00 \\+00:00, took .*, failed \\(manual\\)$"), LastRun),
    ?assertEqual("  error: export failed: mnesia is overloaded", ErrorLine),
    ?assertEqual("runs: 0 ok, 1 failed, 0 skipped", Runs),
    ok = emqx_mgmt_data_backup:set_mode({hang, 1000}),
    Self = self(),
    _ = spawn_link(fun() -> Self ! {done, emqx_guard_scheduler:run_now()} end),
    wait_until(fun() -> maps:get(running, emqx_guard_scheduler:status()) =/= undefined end),
    %% status answers while the export runs
    Running = ctl(["backup_status"]),
    ?assert(lists:member("state: running since 2026-11-25 10:00:00 +00:00 (manual)", Running), Running),
    receive {done, {ok, _}} -> ok after 30000 -> error(run_never_finished) end,
    Ok = ctl(["backup_status"]),
    [Name] = backups(),
    ?assert(lists:member("  file: " ++ filename:join(emqx_guard_emqx:backup_dir(), Name), Ok), Ok),
    ?assert(lists:member("runs: 1 ok, 1 failed, 0 skipped", Ok), Ok).

settings_persist_across_restart(_Config) ->
    [_ | _] = ctl(["backup_cron", "45 23 * * 1-5"]),
    ["backup_keep = 9"] = ctl(["backup_keep", "9"]),
    [_ | _] = ctl(["backup_timezone", "America/New_York"]),
    [_] = ctl(["backup_catchup", "2h"]),
    stop_app(),
    start_app(fake_opts(#{})),
    ?assertEqual("backup_cron = \"45 23 * * 1-5\"", hd(ctl(["backup_cron"]))),
    ?assertEqual(["backup_keep = 9"], ctl(["backup_keep"])),
    ?assertEqual("backup_timezone = \"America/New_York\"", hd(ctl(["backup_timezone"]))),
    ?assertEqual(["backup_catchup = \"2h\""], ctl(["backup_catchup"])),
    %% Wednesday 10:00 UTC is 05:00 in New York: the next fire is today 23:45 there
    ?assertEqual(utc({{2026, 11, 26}, {4, 45, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())).

damaged_settings_file_gives_defaults(_Config) ->
    Path = emqx_guard_settings:settings_file(),
    ok = filelib:ensure_dir(Path),
    ok = file:write_file(Path, <<"{emqx_guard_settings, 1, #{backup_cron => <<\"0 3">>),
    start_app(fake_opts(#{})),
    ?assertEqual("backup_cron = \"0 12 * * 0\"", hd(ctl(["backup_cron"]))),
    ?assertEqual(["backup_keep = 5"], ctl(["backup_keep"])),
    %% and it can be repaired by setting a value
    ["backup_keep = 6"] = ctl(["backup_keep", "6"]),
    ?assertMatch(#{backup_keep := 6}, emqx_guard_settings:load()).

command_registered_and_unregistered(_Config) ->
    ?assertEqual({ok, {emqx_guard_cli, cmd}}, emqx_ctl:lookup_command(guard)),
    stop_app(),
    ?assertEqual({error, cmd_not_found}, emqx_ctl:lookup_command(guard)),
    start_app(fake_opts(#{})),
    ?assertEqual({ok, {emqx_guard_cli, cmd}}, emqx_ctl:lookup_command(guard)).

never_crashes(_Config) ->
    %% odd input
    ?assertEqual(ok, emqx_guard_cli:cmd(not_a_list)),
    {ok, _} = emqx_guard_test_io:capture(fun() -> emqx_guard_cli:cmd([[16#1F600], "x"]) end),
    %% a `~' in the data is printed, not taken as a format
    ["Error: " ++ Tilde] = ctl(["backup_cron", "~p ~s * * *"]),
    ?assertNotEqual(nomatch, string:find(Tilde, "~")),
    %% the scheduler is gone: one Error line, still ok
    ok = supervisor:terminate_child(emqx_guard_sup, emqx_guard_scheduler),
    ?assertEqual(["Error: the emqx_guard scheduler is not running"], ctl(["backup_status"])),
    ?assertEqual(["Error: the emqx_guard scheduler is not running"], ctl(["backup_cron", "0 1 * * *"])),
    ?assertEqual({error, <<"emqx_guard is not running">>}, emqx_guard_app:on_health_check(#{})),
    {ok, _} = supervisor:restart_child(emqx_guard_sup, emqx_guard_scheduler).

on_config_changed_validates_and_applies(_Config) ->
    Old = emqx_guard_test_config:of_settings(emqx_guard_settings:load()),
    New = Old#{<<"backup_cron">> => <<"0 4 * * *">>, <<"backup_keep">> => 3, <<"backup_catchup">> => <<"6h">>,
        <<"backup_timezone">> => <<"UTC">>},
    ?assertEqual(ok, emqx_guard_app:on_config_changed(Old, New)),
    ?assertEqual("backup_cron = \"0 4 * * *\"", hd(ctl(["backup_cron"]))),
    ?assertEqual(utc({{2026, 11, 26}, {4, 0, 0}}), maps:get(next_fire, emqx_guard_scheduler:status())),
    Before = settings_file_content(),
    {error, Why} = emqx_guard_app:on_config_changed(New, New#{<<"backup_keep">> => 0, <<"backup_cron">> => <<"0 5 * * *">>}),
    ?assert(is_binary(Why)),
    {error, _} = emqx_guard_app:on_config_changed(New, New#{<<"backup_cron">> => <<"0 5 * *">>}),
    {error, _} = emqx_guard_app:on_config_changed(New, New#{<<"colour">> => <<"blue">>}),
    ?assertEqual(Before, settings_file_content()),
    %% while the plugin is stopped the change is stored and used at the next start
    stop_app(),
    ?assertEqual(ok, emqx_guard_app:on_config_changed(New, New#{<<"backup_keep">> => 4})),
    start_app(fake_opts(#{})),
    ?assertEqual(["backup_keep = 4"], ctl(["backup_keep"])).

%% A dashboard save holding every secret the settings have (the keys typed password, secret or
%% URL in the schema: SMTP password, webhook and chat URLs, chat tokens and signing secrets, the
%% S3 secret key) goes wrong in every way it can: a value fails validation, a crash inside the
%% change (the scheduler killed while the settings server waits on it), no answer in time (the
%% settings server stuck), no settings server (noproc). Each time the dashboard gets one line,
%% and no secret is in it, in any log event (crash reports included) or in the servers' status
%% (issue 19, defect 7).
dashboard_errors_never_show_secrets(_Config) ->
    Secret = fun(K) -> "Zq" ++ integer_to_list(erlang:phash2(K)) ++ "Secret" end,
    Types = [{K, T} || {K, T, _} <- emqx_guard_notify_config:specs() ++ emqx_guard_offsite_config:specs(),
        lists:member(T, [password, secret, url, any_url])],
    ?assert(length(Types) >= 10, Types),
    Value = fun
        (K, T) when T =:= url; T =:= any_url ->
            list_to_binary("https://hooks.example.com/hook/" ++ Secret(K) ++ "?token=" ++ Secret(K));
        (K, _) ->
            list_to_binary("pw-" ++ Secret(K))
    end,
    Secrets = [list_to_binary(Secret(K)) || {K, _} <- Types],
    Old = emqx_guard_test_config:of_settings(emqx_guard_settings:get()),
    %% every channel whole (and an s3 destination), so only the fault under test refuses it
    New = maps:merge(Old, maps:from_list(
        [{atom_to_binary(K), Value(K, T)} || {K, T} <- Types] ++
            [{<<"notify_smtp_user">>, <<"ops">>}, {<<"notify_slack_channel">>, <<"C0GUARD">>},
             {<<"backup_remote_type">>, <<"s3">>}, {<<"backup_remote_bucket">>, <<"b">>},
             {<<"backup_remote_access_key">>, <<"a">>}]
    )),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Logs} = emqx_guard_test_logs:start(),
    Answers =
        try
            %% validation: a bad value next to the secrets
            {error, Invalid} = emqx_guard_app:on_config_changed(Old, New#{<<"backup_keep">> => 0}),
            {error, Rule} = emqx_guard_app:on_config_changed(Old, New#{<<"notify_slack_channel">> => <<>>}),
            %% a crash inside the change: the settings server calls the scheduler, which is killed
            Scheduler = whereis(emqx_guard_scheduler),
            ok = sys:suspend(Scheduler),
            Self = self(),
            _ = spawn(fun() -> Self ! {answer, emqx_guard_app:on_config_changed(Old, New)} end),
            wait_until(fun() -> element(2, process_info(Scheduler, message_queue_len)) > 0 end),
            true = exit(Scheduler, kill),
            Crash = receive {answer, A} -> A after 60000 -> error(no_answer) end,
            wait_until(fun() -> is_pid(whereis(emqx_guard_scheduler)) andalso is_pid(whereis(emqx_guard_settings_sync)) end),
            %% no answer in time: the settings server is stuck
            ok = application:set_env(emqx_guard, cluster, #{call_timeout_ms => 300}),
            Sync = whereis(emqx_guard_settings_sync),
            ok = sys:suspend(Sync),
            Timeout = emqx_guard_app:on_config_changed(Old, New),
            true = exit(Sync, kill),
            wait_until(fun() -> is_pid(whereis(emqx_guard_settings_sync)) end),
            %% no settings server while the plugin runs
            ok = supervisor:terminate_child(emqx_guard_sup, emqx_guard_settings_sync),
            NoProc = emqx_guard_app:on_config_changed(Old, New),
            {ok, _} = supervisor:restart_child(emqx_guard_sup, emqx_guard_settings_sync),
            [{error, Invalid}, {error, Rule}, Crash, Timeout, NoProc]
        after
            application:unset_env(emqx_guard, cluster),
            ok = logger:set_primary_config(level, Level)
        end,
    Events = emqx_guard_test_logs:stop(Logs),
    ct:log("answers:~n~tp", [Answers]),
    AnswerText = unicode:characters_to_binary(io_lib:format("~tp", [Answers])),
    [?assertEqual(nomatch, binary:match(AnswerText, S), {answers, S}) || S <- Secrets],
    LogText = emqx_guard_test_logs:text(Events),
    [?assertEqual(nomatch, binary:match(LogText, S), {logs, S}) || S <- Secrets],
    Status = unicode:characters_to_binary(
        io_lib:format("~tp~n~tp", [sys:get_status(emqx_guard_settings_sync), sys:get_status(emqx_guard_scheduler)])),
    [?assertEqual(nomatch, binary:match(Status, S), {status, S}) || S <- Secrets],
    %% each fault is an error line, and the crash was reported (and redacted) by the server
    [?assertMatch({error, <<_/binary>>}, A) || A <- Answers],
    [?assertEqual(nomatch, binary:match(Line, <<"\n">>), Line) || {error, Line} <- Answers],
    ?assert(lists:any(fun(#{msg := {report, #{label := {gen_server, terminate}}}}) -> true; (_) -> false end, Events)).

export_unsupported_still_starts(_Config) ->
    %% EMQX 5.0: no emqx_mgmt_data_backup (its beam is hidden so it cannot be loaded again)
    Beam = code:which(emqx_mgmt_data_backup),
    Hidden = Beam ++ ".hidden",
    _ = code:purge(emqx_mgmt_data_backup),
    true = code:delete(emqx_mgmt_data_backup),
    _ = code:purge(emqx_mgmt_data_backup),
    ok = file:rename(Beam, Hidden),
    try
        {error, nofile} = code:ensure_loaded(emqx_mgmt_data_backup),
        T0 = erlang:monotonic_time(millisecond),
        start_app(fake_opts(#{})),
        ct:log("start took ~b ms", [erlang:monotonic_time(millisecond) - T0]),
        Status = ctl(["backup_status"]),
        ?assert(
            lists:any(fun(L) -> string:find(L, "next fire: none; backups cannot run: this EMQX has no data export") =/= nomatch end, Status),
            Status
        ),
        ?assertMatch([#{name := ?ALARM}], emqx_alarm:active_alarms()),
        [Refused] = ctl(["backup_now"]),
        ?assertMatch("Error: backups cannot run" ++ _, Refused),
        ?assertMatch({error, <<"backups cannot run", _/binary>>}, emqx_guard_app:on_health_check(#{})),
        %% the settings commands still work
        ?assertEqual(["backup_keep = 2"], ctl(["backup_keep", "2"])),
        emqx_guard_ct_helper:no_timer(wake)
    after
        ok = file:rename(Hidden, Beam),
        {module, _} = code:ensure_loaded(emqx_mgmt_data_backup)
    end.
