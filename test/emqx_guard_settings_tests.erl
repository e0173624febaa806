%% EUnit tests for the parts of the settings, schedule formatting and CLI
%% parsing that do not need the NIF: durations, keep, persistence (atomic
%% write, damaged files), instant formatting and glob detection.
-module(emqx_guard_settings_tests).

-include_lib("eunit/include/eunit.hrl").

%%--------------------------------------------------------------------
%% Durations

parse_duration_test_() ->
    [
        ?_assertEqual({ok, 86400}, said(emqx_guard_render:parse_duration(<<"24h">>))),
        ?_assertEqual({ok, 5400}, said(emqx_guard_render:parse_duration("90m"))),
        ?_assertEqual({ok, 5400}, said(emqx_guard_render:parse_duration(<<"1h30m">>))),
        ?_assertEqual({ok, 172800}, said(emqx_guard_render:parse_duration(<<"2d">>))),
        ?_assertEqual({ok, 45}, said(emqx_guard_render:parse_duration(<<" 45s ">>))),
        ?_assertEqual({ok, 0}, said(emqx_guard_render:parse_duration(<<"0">>))),
        ?_assertEqual({ok, 600}, said(emqx_guard_render:parse_duration(<<"600">>))),
        ?_assertEqual({ok, 3600}, said(emqx_guard_render:parse_duration(<<"1H">>))),
        ?_assertMatch({error, <<"must be a duration", _/binary>>}, said(emqx_guard_render:parse_duration(<<"">>))),
        ?_assertMatch({error, _}, said(emqx_guard_render:parse_duration(<<"24 hours">>))),
        ?_assertMatch({error, _}, said(emqx_guard_render:parse_duration(<<"h">>))),
        ?_assertMatch({error, _}, said(emqx_guard_render:parse_duration(<<"-5m">>))),
        ?_assertMatch({error, _}, said(emqx_guard_render:parse_duration(<<"1.5h">>)))
    ].

format_duration_test_() ->
    [
        ?_assertEqual(<<"0">>, emqx_guard_render:duration_s(0)),
        ?_assertEqual(<<"24h">>, emqx_guard_render:duration_s(86400)),
        ?_assertEqual(<<"90m">>, emqx_guard_render:duration_s(5400)),
        ?_assertEqual(<<"10m">>, emqx_guard_render:duration_s(600)),
        ?_assertEqual(<<"45s">>, emqx_guard_render:duration_s(45)),
        ?_assertEqual(<<"3601s">>, emqx_guard_render:duration_s(3601))
    ].

duration_round_trip_test() ->
    lists:foreach(
        fun(S) ->
            ?assertEqual({ok, S}, emqx_guard_render:parse_duration(emqx_guard_render:duration_s(S)))
        end,
        [0, 1, 59, 60, 61, 3599, 3600, 5400, 86400, 90061]
    ).

catchup_and_timeout_limits_test_() ->
    [
        ?_assertEqual({ok, 0}, said(emqx_guard_settings:validate(backup_catchup, <<"0">>))),
        ?_assertEqual({ok, 86400}, said(emqx_guard_settings:validate(backup_catchup, "24h"))),
        ?_assertMatch({error, <<"backup_catchup must be at most 366 days">>},
            said(emqx_guard_settings:validate(backup_catchup, <<"400d">>))),
        ?_assertMatch({error, <<"backup_catchup must be a duration", _/binary>>},
            said(emqx_guard_settings:validate(backup_catchup, <<"soon">>))),
        ?_assertMatch({error, <<"export_timeout must be longer than 0">>},
            said(emqx_guard_settings:validate(export_timeout, <<"0">>))),
        ?_assertEqual({ok, 600}, said(emqx_guard_settings:validate(export_timeout, <<"10m">>)))
    ].

%%--------------------------------------------------------------------
%% Keep and unknown keys

keep_test_() ->
    [
        ?_assertEqual({ok, 1}, said(emqx_guard_settings:validate(backup_keep, "1"))),
        ?_assertEqual({ok, 1000}, said(emqx_guard_settings:validate(backup_keep, <<"1000">>))),
        ?_assertEqual({ok, 7}, said(emqx_guard_settings:validate(backup_keep, 7))),
        %% a policy: `last=N' alone is stored as the count, anything else as its canonical text
        ?_assertEqual({ok, 4}, said(emqx_guard_settings:validate(backup_keep, <<" Last=4 ">>))),
        ?_assertEqual({ok, <<"last=3 daily=7 within=2d">>},
            said(emqx_guard_settings:validate(backup_keep, "within=2d, daily=7 last=3"))),
        ?_assertEqual({ok, <<"last=3 daily=7 within=2d">>},
            said(emqx_guard_settings:validate(backup_keep, <<"last=3 daily=7 within=2d">>))),
        ?_assertEqual({error, <<"backup_keep: \"0\" keeps nothing: at least one rule must be above zero, e.g. last=5">>},
            said(emqx_guard_settings:validate(backup_keep, "0"))),
        ?_assertEqual({error, <<"backup_keep: \"100001\": last takes a whole number from 0 to 100000, e.g. last=5">>},
            said(emqx_guard_settings:validate(backup_keep, 100001))),
        ?_assertEqual({error, <<"backup_keep: \"five\" is not a rule: write each rule as name=value, e.g. daily=7 "
                                "(a bare number N alone means last=N)">>},
            said(emqx_guard_settings:validate(backup_keep, "five"))),
        ?_assertEqual({error, <<"backup_keep: \"daily=-1\": daily takes a whole number from 0 to 100000, e.g. daily=7">>},
            said(emqx_guard_settings:validate(backup_keep, "daily=-1"))),
        ?_assertMatch({error, _}, said(emqx_guard_settings:validate(backup_keep, "5x"))),
        %% the off-site policy: local (any case), or a policy
        ?_assertEqual({ok, local}, said(emqx_guard_settings:validate(backup_remote_keep, <<" LOCAL ">>))),
        ?_assertEqual({ok, local}, said(emqx_guard_settings:validate(backup_remote_keep, local))),
        ?_assertEqual({ok, <<"daily=30 monthly=12">>},
            said(emqx_guard_settings:validate(backup_remote_keep, "monthly=12 daily=30"))),
        ?_assertEqual({ok, 9}, said(emqx_guard_settings:validate(backup_remote_keep, 9))),
        %% pins: export names, sorted, each once
        ?_assertEqual({ok, [<<"emqx-export-2026-01-01-00-00-00.000.tar.gz">>, <<"emqx-export-2026-02-01-00-00-00.000.tar.gz">>]},
            said(emqx_guard_settings:validate(backup_pins, <<"emqx-export-2026-02-01-00-00-00.000.tar.gz, "
                "emqx-export-2026-01-01-00-00-00.000.tar.gz emqx-export-2026-02-01-00-00-00.000.tar.gz">>))),
        ?_assertEqual({ok, []}, said(emqx_guard_settings:validate(backup_pins, []))),
        ?_assertEqual({error, <<"backup_pins: <<\"upload.tar.gz\">> is not an export name (emqx-export-YYYY-MM-DD-HH-MM-SS.mmm.tar.gz)">>},
            said(emqx_guard_settings:validate(backup_pins, [<<"upload.tar.gz">>])))
    ].

validate_changes_test_() ->
    [
        ?_assertEqual({ok, #{backup_keep => 3, backup_catchup => 5400}},
            said(emqx_guard_settings:validate_changes(#{<<"backup_keep">> => 3, <<"backup_catchup">> => <<"90m">>}))),
        ?_assertEqual({error, <<"unknown setting backup_kept">>},
            said(emqx_guard_settings:validate_changes(#{<<"backup_kept">> => 3}))),
        %% one bad value rejects the whole change
        ?_assertMatch({error, <<"backup_keep", _/binary>>},
            said(emqx_guard_settings:validate_changes(#{<<"backup_keep">> => 0, <<"backup_catchup">> => <<"1h">>}))),
        ?_assertEqual({error, <<"settings must be a map">>}, said(emqx_guard_settings:validate_changes([])))
    ].

defaults_test() ->
    D = emqx_guard_settings:defaults(),
    ?assertEqual(<<"0 12 * * 0">>, maps:get(backup_cron, D)),
    ?assertEqual(5, maps:get(backup_keep, D)),
    ?assertEqual(<<"local">>, maps:get(backup_timezone, D)),
    ?assertEqual(86400, maps:get(backup_catchup, D)),
    ?assertEqual(600, maps:get(export_timeout, D)).

%%--------------------------------------------------------------------
%% Persistence (no NIF needed: values below are the defaults or numeric)

with_data_dir(Fun) ->
    Dir = filename:join(["/tmp", "emqx_guard_eunit_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = emqx:set_data_dir(Dir),
    try
        Fun(Dir)
    after
        _ = file:del_dir_r(Dir),
        emqx:reset()
    end.

missing_file_gives_defaults_test() ->
    with_data_dir(fun(_Dir) ->
        ?assertEqual(emqx_guard_settings:defaults(), emqx_guard_settings:load()),
        ?assertEqual(emqx_guard_run_state:fresh(), emqx_guard_run_state:load())
    end).

state_round_trip_test() ->
    with_data_dir(fun(Dir) ->
        State = #{
            last_fired => 1764417600000,
            last_run => #{started_at => 1764417600000, duration_ms => 1200, result => ok,
                trigger => scheduled, path => <<"/x/emqx-export-2025-11-29-12-00-00.000.tar.gz">>},
            counts => #{ok => 3, failed => 1, skipped => 2}
        },
        ok = emqx_guard_run_state:save(State),
        %% read back as an outcome: the node it ran on (this one) and no warnings; a file without
        %% the last success (older than it) has it from its good last run
        #{last_run := Run} = State,
        Read = Run#{node => node(), warnings => []},
        ?assertEqual(State#{last_run := Read, last_success => emqx_guard_outcome:summary(Read)}, emqx_guard_run_state:load()),
        %% only the state file is left in the directory: the temporary file was renamed
        ?assertEqual(["state.eterm"], element(2, file:list_dir(filename:join(Dir, "emqx_guard"))))
    end).

settings_round_trip_test() ->
    with_data_dir(fun(_Dir) ->
        S = (emqx_guard_settings:defaults())#{backup_keep => 9, backup_catchup => 0},
        ok = emqx_guard_settings:save(S),
        ?assertEqual(S, emqx_guard_settings:load())
    end).

damaged_settings_file_gives_defaults_test() ->
    with_data_dir(fun(_Dir) ->
        Path = emqx_guard_settings:settings_file(),
        ok = filelib:ensure_dir(Path),
        lists:foreach(
            fun(Garbage) ->
                ok = file:write_file(Path, Garbage),
                ?assertEqual(emqx_guard_settings:defaults(), emqx_guard_settings:load())
            end,
            [
                <<"{emqx_guard_settings, 1, #{backup_keep => ">>,
                <<0, 255, 1, 2, 3>>,
                <<"not a term at all">>,
                <<"{other, thing}.">>,
                <<"{emqx_guard_settings, 1, #{}}. {second, term}.">>,
                %% no code is executed: a fun is not a term file:consult accepts
                <<"{emqx_guard_settings, 1, fun() -> os:cmd(\"touch /tmp/pwned\") end}.">>,
                <<>>
            ]
        )
    end).

damaged_value_falls_back_per_key_test() ->
    with_data_dir(fun(_Dir) ->
        Path = emqx_guard_settings:settings_file(),
        ok = filelib:ensure_dir(Path),
        ok = file:write_file(Path, <<"{emqx_guard_settings, 1, #{backup_keep => 0, backup_catchup => 60}}.\n">>),
        Expected = (emqx_guard_settings:defaults())#{backup_catchup => 60},
        ?assertEqual(Expected, emqx_guard_settings:load())
    end).

damaged_state_file_gives_fresh_state_test() ->
    with_data_dir(fun(_Dir) ->
        Path = emqx_guard_run_state:path(),
        ok = filelib:ensure_dir(Path),
        ok = file:write_file(Path, <<"{emqx_guard_state, 1, #{last_fired => ">>),
        ?assertEqual(emqx_guard_run_state:fresh(), emqx_guard_run_state:load()),
        ok = file:write_file(Path, <<"{emqx_guard_state, 1, #{last_fired => soon, counts => #{ok => -1, failed => 2}}}.">>),
        ?assertEqual(
            #{last_fired => undefined, last_run => undefined, counts => #{ok => 0, failed => 2, skipped => 0}},
            emqx_guard_run_state:load()
        )
    end).

%% Each damaged shape the audit of issue 3 found, and its neighbours: a record the alarm, the NIF
%% or backup_status cannot use is dropped on load (never handed to the scheduler): each case
%% loads as a fresh state.
damaged_state_values_are_dropped_test_() ->
    Good = #{started_at => 1764417600000, duration_ms => 1200, result => failed, trigger => manual,
        error => <<"export failed: disk full">>},
    Fresh = emqx_guard_run_state:fresh(),
    DroppedRun = fun(Run) -> #{last_run => Run} end,
    Cases = [
        %% error is not a binary: the scheduler's restore_alarm would raise badarg
        DroppedRun(Good#{error => oops}),
        DroppedRun(Good#{error => "a charlist"}),
        %% a failed run with no error at all
        DroppedRun(maps:remove(error, Good)),
        %% no duration: backup_status would fail with "internal error"
        DroppedRun(maps:remove(duration_ms, Good)),
        DroppedRun(Good#{duration_ms => -5}),
        DroppedRun(Good#{duration_ms => 1.5}),
        DroppedRun(maps:remove(trigger, Good)),
        DroppedRun(Good#{trigger => cron}),
        DroppedRun(Good#{result => 'maybe'}),
        DroppedRun(Good#{started_at => 99999999999999999999}),
        DroppedRun(Good#{started_at => -1}),
        DroppedRun(Good#{instant => 99999999999999999999}),
        DroppedRun(Good#{file => 'x.tar.gz'}),
        DroppedRun(Good#{path => <<255, 254>>}),
        DroppedRun(Good#{size => -1}),
        DroppedRun(Good#{sha256 => 42}),
        DroppedRun(Good#{pruned => many}),
        DroppedRun(Good#{warning => [1, 2]}),
        DroppedRun(#{started_at => 1}),
        DroppedRun([started_at, 1]),
        %% last_fired out of range: the NIF would raise badarg on it
        #{last_fired => 99999999999999999999},
        #{last_fired => 253402300800000},
        #{last_fired => -1},
        #{last_fired => 1.0e12},
        #{counts => #{ok => 1.5, failed => -2, skipped => x}}
    ],
    [
        ?_test(with_data_dir(fun(_Dir) ->
            Path = emqx_guard_run_state:path(),
            ok = filelib:ensure_dir(Path),
            ok = file:write_file(Path, io_lib:format("~tp.~n", [{emqx_guard_state, 1, Stored}])),
            ?assertEqual(Fresh, emqx_guard_run_state:load())
        end))
     || Stored <- Cases
    ].

%% The edges of what is kept: the year 9999, zero, a successful run without error, and the
%% fields of a file written by an earlier version.
sane_state_values_are_kept_test() ->
    with_data_dir(fun(_Dir) ->
        Max = 253402300799999,
        Run = #{started_at => Max, duration_ms => 0, result => ok, trigger => catchup, instant => 0,
            file => <<"emqx-export-2025-11-29-12-00-00.000.tar.gz">>, size => 0, pruned => 0,
            sha256 => <<"ab">>, warning => <<"could not make it private"/utf8>>},
        Path = emqx_guard_run_state:path(),
        ok = filelib:ensure_dir(Path),
        Stored = #{last_fired => Max, last_run => Run#{node => 'n@h'}, counts => #{ok => 0, failed => 7, skipped => 1}},
        ok = file:write_file(Path, io_lib:format("~tp.~n", [{emqx_guard_state, 1, Stored}])),
        %% written before the outcome had one shape: the pruned count is dropped, the one
        %% warning line becomes the list of warnings
        Outcome = (maps:without([pruned, warning], Run))#{node => 'n@h', warnings => [maps:get(warning, Run)]},
        ?assertEqual(Stored#{last_run := Outcome, last_success => emqx_guard_outcome:summary(Outcome)}, emqx_guard_run_state:load())
    end).

%% An instant the NIF refuses (badarg) is an error with its line, not an exception in the caller.
schedule_out_of_range_instant_is_an_error_test_() ->
    Huge = 99999999999999999999,
    [
        ?_assertMatch({error, <<_/binary>>}, said(emqx_guard_cron:next_fire(<<"* * * * *">>, <<"UTC">>, Huge))),
        ?_assertMatch({error, <<_/binary>>},
            said(emqx_guard_cron:catchup_instant(<<"* * * * *">>, <<"UTC">>, Huge, Huge, 3600))),
        ?_assertMatch({error, <<_/binary>>}, said(emqx_guard_cron:preview(<<"* * * * *">>, <<"UTC">>, Huge, 3))),
        %% the NIF itself is usable: the same call in range answers
        ?_assertEqual({ok, 60000}, emqx_guard_cron:next_fire(<<"* * * * *">>, <<"UTC">>, 0))
    ].

%% The dashboard's copy of the config never saw a change made with `emqx ctl guard': saving an
%% unrelated field there must not write its stale backup_cron back (plugin stopped: the change is
%% persisted for the next start).
dashboard_save_keeps_cli_changes_test() ->
    with_data_dir(fun(_Dir) ->
        Old = emqx_guard_test_config:of_settings(emqx_guard_settings:defaults()),
        {ok, Cron} = emqx_guard_settings:validate(backup_cron, <<"15 3 * * *">>),
        ok = emqx_guard_settings:save((emqx_guard_settings:load())#{backup_cron => Cron}),
        ?assertEqual(ok, emqx_guard_app:on_config_changed(Old, Old#{<<"notify_on_success">> => true})),
        Loaded = emqx_guard_settings:load(),
        ?assertEqual(<<"15 3 * * *">>, maps:get(backup_cron, Loaded)),
        ?assertEqual(true, maps:get(notify_on_success, Loaded)),
        %% a bad value anywhere in New is refused, even in a field that did not change
        Bad = Old#{<<"backup_keep">> => 0},
        ?assertMatch({error, <<"backup_keep", _/binary>>},
            emqx_guard_app:on_config_changed(Bad, Bad#{<<"notify_on_success">> => false})),
        ?assertEqual(Loaded, emqx_guard_settings:load()),
        %% a field the dashboard did change is applied
        ?assertEqual(ok, emqx_guard_app:on_config_changed(Old, Old#{<<"backup_cron">> => <<"0 1 * * *">>})),
        ?assertEqual(<<"0 1 * * *">>, maps:get(backup_cron, emqx_guard_settings:load()))
    end).

write_error_is_a_line_test() ->
    with_data_dir(fun(Dir) ->
        %% a plain file where the directory should be
        ok = file:write_file(Dir, <<"x">>),
        {error, Line} = said(emqx_guard_settings:save(emqx_guard_settings:defaults())),
        ?assertMatch({match, _}, re:run(Line, <<"^cannot write .*settings.eterm: ">>)),
        ok = file:delete(Dir)
    end).

%%--------------------------------------------------------------------
%% Formatting and CLI parsing

format_instant_test_() ->
    %% 2026-11-29 11:00:00 UTC
    Ms = 1795950000000,
    [
        ?_assertEqual(<<"2026-11-29 12:00:00 +01:00">>, emqx_guard_render:instant(Ms, 3600)),
        ?_assertEqual(<<"2026-11-29 11:00:00 +00:00">>, emqx_guard_render:instant(Ms, 0)),
        ?_assertEqual(<<"2026-11-29 16:30:00 +05:30">>, emqx_guard_render:instant(Ms, 19800)),
        ?_assertEqual(<<"2026-11-29 06:00:00 -05:00">>, emqx_guard_render:instant(Ms, -18000)),
        ?_assertEqual(<<"2026-11-28 23:30:00 -11:30">>, emqx_guard_render:instant(Ms, -41400))
    ].

glob_detection_test_() ->
    G = fun emqx_guard_cli:looks_glob_expanded/1,
    [
        ?_assertNot(G([<<"0 12 * * 0">>])),
        ?_assertNot(G([<<"0">>, <<"12">>, <<"*">>, <<"*">>, <<"0">>])),
        ?_assertNot(G([<<"*/5">>, <<"*">>, <<"*">>, <<"*">>, <<"mon-fri">>])),
        ?_assertNot(G([<<"0 0-23/2 * jan,jul sun">>])),
        ?_assertNot(G([<<"@daily">>])),
        %% `*' expanded to files of the current directory
        ?_assert(G([<<"0">>, <<"12">>, <<"bin">>, <<"data">>, <<"etc">>, <<"lib">>, <<"log">>, <<"0">>])),
        ?_assert(G([<<"0">>, <<"12">>, <<"README.md">>, <<"*">>, <<"0">>])),
        ?_assert(G([<<"0">>, <<"12">>, <<"data/backup">>, <<"*">>, <<"0">>])),
        ?_assert(G([<<"0">>, <<"12">>, <<"/tmp">>, <<"*">>, <<"0">>])),
        %% a plain name of the current directory, as `*' produces it
        ?_assert(G([<<"0">>, <<"12">>, cwd_entry(), <<"*">>, <<"0">>])),
        %% more than 5 parts is never one unquoted expression
        ?_assert(G([<<"0">>, <<"0">>, <<"12">>, <<"*">>, <<"*">>, <<"0">>]))
    ].

%% A name in the current directory without `.' or `/' (so only the
%% existing-file check can spot it), made if there is none.
cwd_entry() ->
    {ok, Names} = file:list_dir("."),
    case [N || N <- Names, not lists:member($., N), re:run(N, "^[0-9*,/-]+$") =:= nomatch] of
        [Name | _] -> list_to_binary(Name);
        [] -> error(no_plain_entry_in_cwd)
    end.

format_size_test_() ->
    [
        ?_assertEqual(<<"512 B">>, emqx_guard_render:size(512)),
        ?_assertEqual(<<"12.3 KiB">>, emqx_guard_render:size(12595)),
        ?_assertEqual(<<"4.0 MiB">>, emqx_guard_render:size(4 * 1024 * 1024)),
        ?_assertEqual(<<"1.5 GiB">>, emqx_guard_render:size(3 * 512 * 1024 * 1024))
    ].

format_ms_test_() ->
    [
        ?_assertEqual(<<"850 ms">>, emqx_guard_render:duration_ms(850)),
        ?_assertEqual(<<"12.3 s">>, emqx_guard_render:duration_ms(12345)),
        ?_assertEqual(<<"4 min 5 s">>, emqx_guard_render:duration_ms(245000))
    ].

%% What a person reads of a refusal: the reason's line (emqx_guard_outcome:format_error/1).
said({error, Why}) -> {error, emqx_guard_outcome:format_error(Why)};
said(Other) -> Other.
