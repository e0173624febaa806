%% Common Test suite for retention policies (issue 22) on the real NIF: a year of dated export
%% files (names and recorded run starts) pruned by each policy, the dry run and the real prune
%% agreeing file by file, here and off-site (a real S3 server, s3s-fs, with another policy than
%% the local one), pins, `backup_list --why', bad rules refused with one line and nothing
%% changed, and settings of earlier versions read as before. The app runs against the EMQX
%% stand-ins with real files; the periods are counted in Europe/Berlin. Every backup is made at
%% 12:00 of its day, so the node's own zone (which EMQX names exports in) never moves one to
%% another day.
-module(emqx_guard_retention_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    a_year_pruned_by_each_policy/1,
    dry_run_and_prune_agree_here_and_off_site/1,
    pinned_backups_are_never_deleted/1,
    list_why_and_status_show_the_policy/1,
    bad_rules_are_refused_and_change_nothing/1,
    earlier_settings_read_as_before/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, backups/0]).

-define(ZONE, "Europe/Berlin").

all() ->
    [
        a_year_pruned_by_each_policy,
        dry_run_and_prune_agree_here_and_off_site,
        pinned_backups_are_never_deleted,
        list_why_and_status_show_the_policy,
        bad_rules_are_refused_and_change_nothing,
        earlier_settings_read_as_before
    ].

init_per_suite(Config) ->
    Config1 = emqx_guard_ct_helper:init_suite(Config),
    ok = application:set_env(emqx_guard, offsite_retry_ms, [50, 50]),
    ok = application:set_env(emqx_guard, offsite_requeue_ms, [3600000]),
    ok = application:set_env(emqx_guard, offsite_extra, #{max_retries => 0, connect_timeout_ms => 2000, timeout_ms => 20000}),
    Config1.

end_per_suite(_Config) ->
    application:unset_env(emqx_guard, offsite_retry_ms),
    application:unset_env(emqx_guard, offsite_requeue_ms),
    application:unset_env(emqx_guard, offsite_extra),
    emqx:reset(),
    ok.

init_per_testcase(dry_run_and_prune_agree_here_and_off_site = TC, Config) ->
    case {emqx_guard_s3_helper:binary(), os:getenv("EMQX_GUARD_SKIP_S3")} of
        {false, "1"} -> {skip, "s3s-fs is not installed and EMQX_GUARD_SKIP_S3=1"};
        {false, _} -> ct:fail("s3s-fs (the S3 server of the off-site tests) is not installed: run make test-deps");
        _ -> start_case(TC, Config)
    end;
init_per_testcase(TC, Config) ->
    start_case(TC, Config).

start_case(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    set_now({{2026, 12, 1}, {10, 0, 0}}),
    start_app(fake_opts(#{})),
    ok = filelib:ensure_dir(filename:join(emqx_guard_emqx:backup_dir(), "x")),
    ["backup_timezone = \"" ?ZONE "\"" | _] = ctl(["backup_timezone", ?ZONE]),
    case TC of
        dry_run_and_prune_agree_here_and_off_site ->
            [{s3, emqx_guard_s3_helper:start(?config(data_dir, Config1))} | Config1];
        _ ->
            Config1
    end.

end_per_testcase(_TC, Config) ->
    case ?config(s3, Config) of
        undefined -> ok;
        S3 -> emqx_guard_s3_helper:stop(S3)
    end,
    emqx_guard_ct_helper:end_case().

%%--------------------------------------------------------------------------------------------

%% A year of daily backups (2025-12-01 to 2026-11-30, every other one with its run's start
%% recorded) under each policy: the dry run names the rule(s) keeping each file or `delete', the
%% real prune deletes exactly the files the dry run said, and what stays is what restic's rules
%% keep (worked out by hand below).
a_year_pruned_by_each_policy(_Config) ->
    Year = dates({2025, 12, 1}, {2026, 11, 30}),
    Last = fun(N) -> lists:nthtail(length(Year) - N, Year) end,
    Policies = [
        {"daily=7 weekly=4 monthly=12",
            Last(7) ++ [{2026, 11, 22}, {2026, 11, 15}, {2026, 10, 31}, {2026, 9, 30}, {2026, 8, 31}, {2026, 7, 31},
                        {2026, 6, 30}, {2026, 5, 31}, {2026, 4, 30}, {2026, 3, 31}, {2026, 2, 28}, {2026, 1, 31},
                        {2025, 12, 31}]},
        {"5", Last(5)},
        {"last=3", Last(3)},
        %% weeks 49 and 48, November and October, 2026 and 2025
        {"weekly=2 monthly=2 yearly=2", [{2026, 11, 30}, {2026, 11, 29}, {2026, 10, 31}, {2025, 12, 31}]},
        %% back to 2026-11-20 00:00 in Berlin: the 20th at noon is within, the 19th is not
        {"within=10d12h", Last(11)},
        {"last=2 within=1d monthly=1", Last(2)}
    ],
    lists:foreach(
        fun({Policy, Kept}) ->
            Names = year_of_backups(Year),
            ?assertMatch(["backup_keep = " ++ _], ctl(["backup_keep" | string:lexemes(Policy, " ")])),
            {Header, Plan} = dry_run_here(),
            Expected = [export_name(D) || D <- Kept],
            Doomed = lists:sort(Names -- Expected),
            ?assertEqual(length(Names), length(Plan), Policy),
            ?assertEqual(Doomed, lists:sort([N || {N, "delete"} <- Plan]), Policy),
            ?assert(lists:prefix(lists:flatten(io_lib:format("Retention here (~ts) would delete ~B of the ~B backup(s) in ",
                                                             [canonical(Policy), length(Doomed), length(Names)])), Header), Header),
            %% nothing deleted by the dry run; the real prune deletes exactly what it said
            ?assertEqual(lists:sort(Names), backups()),
            {ok, #{pruned := Pruned}} = prune_here(),
            ?assertEqual(Doomed, lists:sort([binary_to_list(P) || P <- Pruned]), Policy),
            ?assertEqual(lists:sort(Expected), backups(), Policy)
        end,
        Policies
    ),
    %% the reasons, restic's way
    _ = year_of_backups(Year),
    _ = ctl(["backup_keep", "daily=7", "weekly=4", "monthly=12"]),
    {_, Plan} = dry_run_here(),
    Why = maps:from_list(Plan),
    ?assertEqual("daily 2026-11-30, weekly 2026-W49, monthly 2026-11", maps:get(export_name({2026, 11, 30}), Why)),
    ?assertEqual("daily 2026-11-29, weekly 2026-W48", maps:get(export_name({2026, 11, 29}), Why)),
    ?assertEqual("weekly 2026-W46", maps:get(export_name({2026, 11, 15}), Why)),
    ?assertEqual("monthly 2025-12", maps:get(export_name({2025, 12, 31}), Why)),
    ?assertEqual("delete", maps:get(export_name({2025, 12, 30}), Why)).

%% Local `last=3', off-site `daily=7 weekly=4 monthly=12' over a year of objects this node did
%% not upload: the dry run lists every backup of both with its rule(s) or `delete'; remote
%% retention is paused (the rebuilt-node guard) until `backup_remote_prune --confirm', then it
%% deletes exactly the objects the dry run named; the local prune likewise.
dry_run_and_prune_agree_here_and_off_site(Config) ->
    S3 = ?config(s3, Config),
    Year = dates({2025, 12, 1}, {2026, 11, 30}),
    Objects = [export_name(D) || D <- Year],
    [ok = write(emqx_guard_s3_helper:object_file(S3, "ct/" ++ N), <<"uploaded by another node">>) || N <- Objects],
    Local = year_of_backups(lists:nthtail(length(Year) - 10, Year)),
    ["backup_keep = 3"] = ctl(["backup_keep", "last=3"]),
    ?assertMatch(["backup_remote_keep = \"daily=7 weekly=4 monthly=12\" (periods in " ?ZONE ")"],
                 ctl(["backup_remote_keep", "daily=7,weekly=4", "monthly=12"])),
    Out = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3)]),
    ?assertEqual("backup_remote = s3", hd(Out), Out),
    offsite_idle(),
    Dry = ctl(["backup_prune", "--dry-run"]),
    {LocalPlan, [Paused, After | RemoteLines]} = lists:splitwith(fun(L) -> not lists:prefix("Nothing is deleted off-site", L) end, Dry),
    ?assert(lists:prefix("Nothing is deleted off-site now: remote retention is paused: there are 365 backup(s)", Paused), Paused),
    ?assertEqual("After guard backup_remote_prune --confirm, off-site retention (daily=7 weekly=4 monthly=12) would delete "
                 "345 of the 365 backup(s) in s3://backups/ct:", After),
    RemotePlan = [remote_plan_line(L) || L <- RemoteLines],
    ?assertEqual(365, length(RemotePlan)),
    RemoteKept = [N || {N, Why} <- RemotePlan, Why =/= "delete"],
    ?assertEqual(20, length(RemoteKept)),
    ?assertEqual("daily 2026-11-30, weekly 2026-W49, monthly 2026-11", proplists:get_value(export_name({2026, 11, 30}), RemotePlan)),
    ?assertEqual("monthly 2026-02", proplists:get_value(export_name({2026, 2, 28}), RemotePlan)),
    %% local: the three newest, by last
    [_ | LocalLines] = LocalPlan,
    Here = [plan_line(L) || L <- LocalLines],
    ?assertEqual(lists:zip(lists:sublist(lists:reverse(Local), 3), ["last #1", "last #2", "last #3"]),
                 lists:sublist(Here, 3)),
    ?assertEqual(["delete"], lists:usort([W || {_, W} <- lists:nthtail(3, Here)])),
    %% nothing deleted by the dry run, anywhere
    ?assertEqual(lists:sort(Objects), emqx_guard_s3_helper:objects(S3)),
    ?assertEqual(lists:sort(Local), backups()),
    %% the real prunes
    {ok, #{pruned := Pruned}} = prune_here(),
    ?assertEqual(lists:sort([N || {N, "delete"} <- Here]), lists:sort([binary_to_list(P) || P <- Pruned])),
    [Confirmed | _] = ctl(["backup_remote_prune", "--confirm"]),
    ?assert(lists:prefix("Remote retention now applies to every backup in s3://backups/ct: it keeps what "
                         "\"daily=7 weekly=4 monthly=12\" keeps there", Confirmed), Confirmed),
    offsite_idle(),
    ?assertEqual(lists:sort(RemoteKept), emqx_guard_s3_helper:objects(S3)),
    ?assertEqual(lists:sort(lists:sublist(lists:reverse(Local), 3)), backups()).

%% A pinned backup is never deleted (not by `last=1', not past every rule's reach), is marked by
%% `backup_list' and named by the dry run; unpinned, the next prune takes it. Pinning a name that
%% is no export or no backup here is refused with one line, the pins unchanged.
pinned_backups_are_never_deleted(_Config) ->
    Names = year_of_backups(dates({2026, 11, 1}, {2026, 11, 10})),
    Oldest = hd(Names),
    ["No backup is pinned (guard backup_pin <name> pins one)"] = ctl(["backup_pin"]),
    [Pinned] = ctl(["backup_pin", Oldest]),
    ?assertEqual("Pinned " ++ Oldest ++ ": retention never deletes it, on any node or off-site (guard backup_unpin "
                 ++ Oldest ++ " lets it go)", Pinned),
    ?assertEqual([Oldest ++ " is pinned already"], ctl(["backup_pin", Oldest])),
    ?assertEqual(["Error: backup_pins: <<\"upload.tar.gz\">> is not an export name (emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz)"],
                 ctl(["backup_pin", "upload.tar.gz"])),
    Missing = "emqx-export-2020-01-01-00-00-00.000.tar.gz",
    ?assertEqual(["Error: no backup named " ++ Missing ++ " here or off-site (see guard backup_list and backup_list --remote)"],
                 ctl(["backup_pin", Missing])),
    ?assertMatch(#{backup_pins := [_]}, emqx_guard_settings:load()),
    ["1 pinned (never deleted by retention, on any node or off-site):", "  " ++ Oldest] = ctl(["backup_pin"]),
    ["backup_keep = 1"] = ctl(["backup_keep", "1"]),
    {_, Plan} = dry_run_here(),
    ?assertEqual("pinned", proplists:get_value(Oldest, Plan)),
    ?assertEqual("last #1", proplists:get_value(lists:last(Names), Plan)),
    {ok, _} = prune_here(),
    ?assertEqual([Oldest, lists:last(Names)], backups()),
    [_, Row1, Row2] = ctl(["backup_list"]),
    ?assert(lists:suffix("  pinned", Row2), Row2),
    ?assertNot(lists:suffix("  pinned", Row1), Row1),
    ?assertEqual(["Error: " ++ lists:last(Names) ++ " is not pinned (guard backup_pin lists the pinned backups)"],
                 ctl(["backup_unpin", lists:last(Names)])),
    ?assertEqual(["Unpinned " ++ Oldest ++ ": retention treats it like the other backups again"], ctl(["backup_unpin", Oldest])),
    ?assertMatch({ok, #{pruned := [_]}}, prune_here()),
    ?assertEqual([lists:last(Names)], backups()).

%% `backup_list --why' shows the listing with what retention does with each backup; the status
%% and `backup_keep' show the policy; `backup_remote_keep local' follows the local one.
list_why_and_status_show_the_policy(_Config) ->
    Names = year_of_backups(dates({2026, 11, 24}, {2026, 11, 30})),
    ["backup_keep = 5"] = ctl(["backup_keep"]),
    ["backup_remote_keep = local (as backup_keep: \"last=5\")"] = ctl(["backup_remote_keep"]),
    ["backup_keep = \"last=1 weekly=2\" (periods in " ?ZONE ")"] = ctl(["backup_keep", "weekly=2", "last=1"]),
    ?assert(lists:member("keep: last=1 weekly=2, catch-up window: 24h", ctl(["backup_status"]))),
    [Head | Rows] = ctl(["backup_list", "--why"]),
    ?assert(lists:prefix("7 backup(s) in ", Head) andalso lists:suffix(" with what retention (last=1 weekly=2) does with each:", Head), Head),
    Why = [{N, string:slice(R, string:rstr(R, "  -> ") + 4)} || {N, R} <- lists:zip(lists:reverse(Names), Rows)],
    ?assertEqual(
        [{lists:nth(7, Names), "last #1, weekly 2026-W49"}, {lists:nth(6, Names), "weekly 2026-W48"}] ++
            [{N, "delete"} || N <- lists:reverse(lists:sublist(Names, 5))],
        Why
    ),
    [?assertNotEqual(nomatch, string:find(R, "  verified (checked ")) || R <- Rows],
    ["backup_remote_keep = \"monthly=3\" (periods in " ?ZONE ")"] = ctl(["backup_remote_keep", "monthly=3"]),
    ["backup_remote_keep = local (as backup_keep: \"last=1 weekly=2\")"] = ctl(["backup_remote_keep", "LOCAL"]),
    ?assertMatch(#{backup_keep := <<"last=1 weekly=2">>, backup_remote_keep := local}, emqx_guard_settings:load()).

%% Each bad rule gets one line saying what to write, and nothing changes: the settings, their
%% file, the files on disk.
bad_rules_are_refused_and_change_nothing(_Config) ->
    Names = year_of_backups(dates({2026, 11, 28}, {2026, 11, 30})),
    ["backup_keep = \"last=2 daily=7\" (periods in " ?ZONE ")"] = ctl(["backup_keep", "last=2", "daily=7"]),
    Before = emqx_guard_settings:load(),
    File = emqx_guard_ct_helper:settings_file_content(),
    lists:foreach(
        fun({Args, Line}) ->
            ?assertEqual(["Error: " ++ Line], ctl(Args), Args),
            ?assertEqual(Before, emqx_guard_settings:load()),
            ?assertEqual(File, emqx_guard_ct_helper:settings_file_content())
        end,
        [
            {["backup_keep", "daily=-1"], "backup_keep: \"daily=-1\": daily takes a whole number from 0 to 100000, e.g. daily=7"},
            {["backup_keep", "weekly=x"], "backup_keep: \"weekly=x\": weekly takes a whole number from 0 to 100000, e.g. weekly=4"},
            {["backup_keep", "last=3", "fortnightly=2"],
                "backup_keep: \"fortnightly=2\": unknown rule \"fortnightly\"; the rules are last, hourly, daily, weekly, "
                "monthly, yearly and within"},
            {["backup_keep", "last=0", "daily=0"],
                "backup_keep: \"last=0 daily=0\" keeps nothing: at least one rule must be above zero, e.g. last=5"},
            {["backup_keep", "0"], "backup_keep: \"0\" keeps nothing: at least one rule must be above zero, e.g. last=5"},
            {["backup_keep", "within=2w"],
                "backup_keep: \"within=2w\": within takes a duration of years, months, days and hours such as 2d, 36h or "
                "1y6m (m is months, a week is 7d), each number from 0 to 100000"},
            {["backup_keep", "daily=7", "daily=8"], "backup_keep: daily is given twice: give each rule once"},
            {["backup_remote_keep", "monthly"],
                "backup_remote_keep: \"monthly\" is not a rule: write each rule as name=value, e.g. daily=7 (a bare number "
                "N alone means last=N)"}
        ]
    ),
    %% the dashboard's refusal is the same line
    {error, Why} = emqx_guard_app:on_config_changed(#{}, #{<<"backup_keep">> => <<"daily=-1">>}),
    ?assertEqual(<<"backup_keep: \"daily=-1\": daily takes a whole number from 0 to 100000, e.g. daily=7">>, Why),
    ?assertEqual(Before, emqx_guard_settings:load()),
    ?assertEqual(lists:sort(Names), backups()).

%% A settings file written before policies (`backup_keep => 7', no pins, no off-site policy)
%% reads as `last=7', shown as it always was; a count set now is still stored as the count; the
%% dashboard's text form is stored the same way.
earlier_settings_read_as_before(_Config) ->
    emqx_guard_ct_helper:stop_app(),
    Path = emqx_guard_settings:settings_file(),
    {ok, {emqx_guard_settings, 1, Old}} = emqx_guard_store:read(Path),
    Earlier = maps:without([backup_remote_keep, backup_pins], Old#{backup_keep => 7}),
    ok = emqx_guard_store:write(Path, {emqx_guard_settings, 1, Earlier}),
    start_app(fake_opts(#{})),
    ?assertEqual(["backup_keep = 7"], ctl(["backup_keep"])),
    ?assertMatch(#{backup_keep := 7, backup_remote_keep := local, backup_pins := []}, emqx_guard_settings:get()),
    ?assertEqual(["backup_keep = 9"], ctl(["backup_keep", "last=9"])),
    ?assertMatch(#{backup_keep := 9}, emqx_guard_settings:load()),
    ok = emqx_guard_app:on_config_changed(#{}, #{<<"backup_keep">> => <<" Last=4 ">>}),
    ?assertMatch(#{backup_keep := 4}, emqx_guard_settings:load()),
    ok = emqx_guard_app:on_config_changed(#{}, #{<<"backup_keep">> => 6}),
    ?assertEqual(["backup_keep = 6"], ctl(["backup_keep"])).

%%--------------------------------------------------------------------------------------------

%% The days from First to Last, inclusive.
dates(First, Last) ->
    [calendar:gregorian_days_to_date(D)
     || D <- lists:seq(calendar:date_to_gregorian_days(First), calendar:date_to_gregorian_days(Last))].

export_name({Y, M, D}) ->
    lists:flatten(io_lib:format("emqx-export-~4..0b-~2..0b-~2..0b-12-00-00.000.tar.gz", [Y, M, D])).

%% The backup directory holding exactly one verified export per date, made at 12:00 of its day
%% (named in the node's local time); every other one has its run's start recorded (12:00 in
%% Berlin), as a run records it. Returns the names, oldest first.
year_of_backups(Dates) ->
    Dir = emqx_guard_emqx:backup_dir(),
    [ok = file:delete(filename:join(Dir, N)) || N <- backups()],
    Names = [make_export(Dir, D) || D <- Dates],
    [_ | _] = ctl(["backup_list"]),
    Records = maps:from_list([{binary_to_list(N), R} || R = #{name := N} <- emqx_guard_verifications:records()]),
    Made = [
        (maps:get(N, Records))#{made_at => berlin_noon(D)}
     || {I, D, N} <- lists:zip3(lists:seq(1, length(Dates)), Dates, Names), I rem 2 =:= 0
    ],
    ok = emqx_guard_verifications:add(Made),
    ?assertEqual(Names, backups()),
    Names.

make_export(Dir, Date) ->
    Name = export_name(Date),
    Base = filename:rootname(Name, ".tar.gz"),
    {ok, Fd} = erl_tar:open(filename:join(Dir, Name), [write, compressed]),
    ok = erl_tar:add(Fd, <<"edition = ce\nversion = \"5.3.2\"\n">>, Base ++ "/META.hocon", []),
    ok = erl_tar:add(Fd, <<>>, Base ++ "/cluster.hocon", []),
    ok = erl_tar:close(Fd),
    Name.

%% 12:00 of Date in Berlin, Unix ms (CET +01:00 or CEST +02:00).
berlin_noon(Date) ->
    {ok, Offset} = emqx_guard_core:utc_offset(<<?ZONE>>, emqx_guard_ct_helper:utc({Date, {11, 0, 0}})),
    emqx_guard_ct_helper:utc({Date, {12, 0, 0}}) - Offset * 1000.

%% The local part of `backup_prune --dry-run': its header and each backup's name and fate.
dry_run_here() ->
    [Header | Lines] = ctl(["backup_prune", "--dry-run"]),
    {Header, [plan_line(L) || L <- Lines]}.

%% `  <name>  <size>  <time>  <fate>' -> {Name, Fate}.
plan_line("  " ++ Line) ->
    [Name, _Size, _Time | Fate] = string:split(Line, "  ", all),
    {Name, lists:flatten(lists:join("  ", Fate))}.

%% `  <object>  <size>  <time>  <encryption>  <fate>' -> {Object, Fate}.
remote_plan_line("  " ++ Line) ->
    [Name, _Size, _Time, _Encryption | Fate] = string:split(Line, "  ", all),
    {Name, lists:flatten(lists:join("  ", Fate))}.

prune_here() ->
    emqx_guard_backups:prune(emqx_guard_emqx:backup_dir(), emqx_guard_retention:local(emqx_guard_settings:get()), undefined).

canonical(Policy) ->
    {ok, #{text := Text}} = emqx_guard_core:retention_policy(unicode:characters_to_binary(Policy)),
    binary_to_list(Text).

offsite_idle() ->
    emqx_guard_ct_helper:wait_until(fun() ->
        not lists:any(fun(L) -> lists:prefix("  uploads: uploading", L) orelse lists:prefix("  uploads: looking", L) end,
                      ctl(["backup_status"]))
    end).

write(Path, Bin) ->
    ok = filelib:ensure_dir(Path),
    file:write_file(Path, Bin).
