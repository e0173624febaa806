%% Common Test suite for emqx_guard_nif: the NIF's Erlang face against real files and tarballs,
%% reloading the library in a running node, panics, and a missing or broken library.
%%
%% Verification and retention run as background jobs (verify_async/2, prune_async/6,
%% list_verified_async/3, the only ways the plugin calls them); verify/1, prune/4,5 and
%% list_verified/2 below wait for such a job, so each case reads as one call.
-module(emqx_guard_nif_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    validate_normalizes/1,
    validate_errors/1,
    non_binary_arguments_are_badarg/1,
    next_fires_utc_and_zone/1,
    next_fires_errors/1,
    many_fires/1,
    never_firing_and_feb_29_return/1,
    describe_english/1,
    resolve_zone_names/1,
    utc_offset_seconds/1,
    list_backups_newest_first/1,
    list_backups_errors/1,
    paths_are_raw_bytes/1,
    prune_keeps_newest/1,
    prune_dry_run_and_protect/1,
    prune_reports_failed_delete/1,
    prune_errors/1,
    verify_good_export/1,
    verify_real_fixture/1,
    verify_errors/1,
    reload_ten_times/1,
    panic_becomes_error/1,
    broken_or_missing_library/1
]).
-export([
    recorded_verification_is_trusted/1,
    changed_file_is_verified_again/1,
    list_verified_trusts_records/1,
    verify_async_delivers_a_record/1,
    cancel_leaves_no_thread/1,
    caller_exit_cancels_the_job/1,
    async_argument_errors/1,
    prune_async_reports_each_verdict/1
]).
-export([
    offsite_upload_list_fetch_prune/1,
    offsite_errors_are_clear_and_leave_nothing/1,
    offsite_without_metadata_age_and_verify_decide/1,
    offsite_argument_errors/1
]).

%% A real export made by EMQX 5.3.2 (kept under its own name: verification depends on it).
-define(FIXTURE_DIR, filename:join([filename:dirname(?FILE), "fixtures", "emqx-5.3.2"])).
-define(FIXTURE_NAME, "emqx-export-2026-11-27-18-58-45.951.tar.gz").
-define(META, <<"edition = ce\nversion = \"5.3.2\"\n">>).

all() ->
    [
        validate_normalizes,
        validate_errors,
        non_binary_arguments_are_badarg,
        next_fires_utc_and_zone,
        next_fires_errors,
        many_fires,
        never_firing_and_feb_29_return,
        describe_english,
        resolve_zone_names,
        utc_offset_seconds,
        list_backups_newest_first,
        list_backups_errors,
        paths_are_raw_bytes,
        prune_keeps_newest,
        prune_dry_run_and_protect,
        prune_reports_failed_delete,
        prune_errors,
        verify_good_export,
        verify_real_fixture,
        verify_errors,
        reload_ten_times,
        panic_becomes_error,
        broken_or_missing_library,
        recorded_verification_is_trusted,
        changed_file_is_verified_again,
        list_verified_trusts_records,
        verify_async_delivers_a_record,
        cancel_leaves_no_thread,
        caller_exit_cancels_the_job,
        async_argument_errors,
        prune_async_reports_each_verdict,
        offsite_upload_list_fetch_prune,
        offsite_errors_are_clear_and_leave_nothing,
        offsite_without_metadata_age_and_verify_decide,
        offsite_argument_errors
    ].

init_per_suite(Config) ->
    {module, emqx_guard_nif} = code:ensure_loaded(emqx_guard_nif),
    %% Fail early and clearly when the library did not load (e.g. `make nif` not run).
    {ok, _} = emqx_guard_nif:validate(<<"* * * * *">>),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(Case, Config) ->
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case)),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    NeedsS3 = lists:member(Case, [offsite_upload_list_fetch_prune, offsite_errors_are_clear_and_leave_nothing,
                                  offsite_without_metadata_age_and_verify_decide]),
    case NeedsS3 andalso emqx_guard_s3_helper:binary() =:= false andalso os:getenv("EMQX_GUARD_SKIP_S3") =:= "1" of
        true -> {skip, "s3s-fs is not installed and EMQX_GUARD_SKIP_S3=1"};
        false -> [{dir, Dir} | Config]
    end.

end_per_testcase(_Case, _Config) ->
    ok.

%%--------------------------------------------------------------------------------------------
%% Schedules
%%--------------------------------------------------------------------------------------------

validate_normalizes(_Config) ->
    ?assertEqual({ok, <<"0 1 * * 0">>}, emqx_guard_nif:validate(<<"  0   1 *\t* 0 ">>)),
    ?assertEqual({ok, <<"*/15 9-17 * * mon-fri">>}, emqx_guard_nif:validate(<<"*/15 9-17 * * mon-fri">>)),
    ?assertMatch({ok, <<"@daily">>}, emqx_guard_nif:validate(<<"@daily">>)).

validate_errors(_Config) ->
    Cases = [
        {<<"">>, empty},
        {<<"   ">>, empty},
        {<<"0 0 1 * * *">>, seconds_field},
        {<<"0 1 * *">>, field_count},
        {<<"@reboot">>, unsupported_macro},
        {<<"60 * * * *">>, out_of_range},
        {<<"0 5-1 * * *">>, reversed_range},
        {<<"*/0 * * * *">>, zero_step},
        {<<"0 0 ? * *">>, quartz_syntax},
        {<<"0 0 L * *">>, quartz_syntax},
        {<<"0 0 * * 1#2">>, quartz_syntax},
        {<<"0 0 30 2 *">>, never_fires},
        {<<"0 0 31 4,6,9,11 *">>, never_fires},
        {<<"0 0 1 * %">>, bad_char},
        {<<16#ff, " * * * *">>, bad_char}
    ],
    lists:foreach(
        fun({Expr, Reason}) ->
            Result = emqx_guard_nif:validate(Expr),
            ?assertMatch({{error, {Reason, _}}, _}, {Result, Expr}),
            {error, {_, Detail}} = Result,
            assert_one_line(Detail)
        end,
        Cases
    ),
    %% The detail names what is wrong.
    {error, {seconds_field, D6}} = emqx_guard_nif:validate(<<"0 0 1 * * *">>),
    ?assertNotEqual(nomatch, string:find(string:lowercase(D6), <<"minute">>)).

non_binary_arguments_are_badarg(_Config) ->
    ?assertError(badarg, emqx_guard_nif:validate("* * * * *")),
    ?assertError(badarg, emqx_guard_nif:next_fires(<<"* * * * *">>, <<"UTC">>, 1.5, 1)),
    ?assertError(badarg, emqx_guard_nif:list_backups(dir)),
    ?assertError(badarg, emqx_guard_nif:prune_async(<<"/tmp">>, 1, nothing, false, [], #{})),
    ?assertError(badarg, emqx_guard_nif:prune_async(<<"/tmp">>, 1, undefined, 'maybe', [], #{})),
    ?assertError(badarg, emqx_guard_nif:verify_async(42, #{})).

next_fires_utc_and_zone(_Config) ->
    After = ms("2026-01-01T00:00:00Z"),
    ?assertEqual(
        {ok, [ms("2026-01-01T12:00:00Z"), ms("2026-01-02T12:00:00Z"), ms("2026-01-03T12:00:00Z")]},
        emqx_guard_nif:next_fires(<<"0 12 * * *">>, <<"UTC">>, After, 3)
    ),
    %% Berlin is UTC+1 in January, UTC+2 in July.
    ?assertEqual(
        {ok, [ms("2026-01-01T11:00:00Z")]},
        emqx_guard_nif:next_fires(<<"0 12 * * *">>, <<"Europe/Berlin">>, After, 1)
    ),
    ?assertEqual(
        {ok, [ms("2026-07-01T10:00:00Z")]},
        emqx_guard_nif:next_fires(<<"0 12 * * *">>, <<"Europe/Berlin">>, ms("2026-07-01T00:00:00Z"), 1)
    ),
    %% Strictly after: a fire time equal to AfterUnixMs is not returned.
    At = ms("2026-01-01T12:00:00Z"),
    ?assertEqual(
        {ok, [ms("2026-01-02T12:00:00Z")]},
        emqx_guard_nif:next_fires(<<"0 12 * * *">>, <<"UTC">>, At, 1)
    ),
    {ok, Many} = emqx_guard_nif:next_fires(<<"*/7 * * * *">>, <<"Asia/Kolkata">>, After, 50),
    ?assertEqual(50, length(Many)),
    ?assert(lists:all(fun(T) -> T > After end, Many)),
    ?assertEqual(Many, lists:usort(Many)),
    {ok, Local} = emqx_guard_nif:next_fires(<<"@hourly">>, <<"local">>, After, 2),
    ?assertEqual(2, length(Local)).

next_fires_errors(_Config) ->
    After = ms("2026-01-01T00:00:00Z"),
    ?assertMatch({error, {bad_zone, _}}, emqx_guard_nif:next_fires(<<"* * * * *">>, <<"Mars/Olympus">>, After, 1)),
    ?assertMatch({error, {bad_zone, _}}, emqx_guard_nif:next_fires(<<"* * * * *">>, <<255, 254>>, After, 1)),
    ?assertMatch({error, {field_count, _}}, emqx_guard_nif:next_fires(<<"* * * *">>, <<"UTC">>, After, 1)),
    [
        ?assertMatch({N, {error, {bad_count, _}}}, {N, emqx_guard_nif:next_fires(<<"* * * * *">>, <<"UTC">>, After, N)})
     || N <- [-1, 0, 1001]
    ],
    ?assertMatch({error, {bad_count, _}}, emqx_guard_nif:next_fires(<<"* * * * *">>, <<"UTC">>, After, 1 bsl 70)),
    ?assertError(badarg, emqx_guard_nif:next_fires(<<"* * * * *">>, <<"UTC">>, After, 3.0)).

%% Small counts run on a normal scheduler, large ones on a dirty CPU scheduler: same answers.
many_fires(_Config) ->
    After = ms("2026-01-01T00:00:00Z"),
    Expr = <<"0 0 29 2 */7">>,
    {ok, Fifty} = emqx_guard_nif:next_fires(Expr, <<"UTC">>, After, 50),
    {ok, FiftyOne} = emqx_guard_nif:next_fires(Expr, <<"UTC">>, After, 51),
    {ok, Thousand} = emqx_guard_nif:next_fires(Expr, <<"UTC">>, After, 1000),
    ?assertEqual(Fifty, lists:sublist(FiftyOne, 50)),
    ?assertEqual(FiftyOne, lists:sublist(Thousand, 51)),
    ?assertEqual(1000, length(Thousand)),
    ?assertEqual(Thousand, lists:usort(Thousand)),
    %% Feb 29 on a Sunday: the first is 2032-02-29.
    ?assertEqual(ms("2032-02-29T00:00:00Z"), hd(Thousand)),
    {ok, Minutes} = emqx_guard_nif:next_fires(<<"* * * * *">>, <<"Europe/Berlin">>, After, 1000),
    ?assertEqual([After + I * 60000 || I <- lists:seq(1, 1000)], Minutes).

never_firing_and_feb_29_return(_Config) ->
    After = ms("2026-03-01T00:00:00Z"),
    ?assertMatch({error, {never_fires, _}}, emqx_guard_nif:next_fires(<<"0 0 30 2 *">>, <<"UTC">>, After, 1)),
    ?assertMatch(
        {error, {never_fires, _}},
        emqx_guard_nif:next_fires(<<"0 0 31 4,6,9,11 *">>, <<"Europe/Berlin">>, After, 3)
    ),
    ?assertEqual(
        {ok, [ms("2028-02-29T00:00:00Z"), ms("2032-02-29T00:00:00Z")]},
        emqx_guard_nif:next_fires(<<"0 0 29 2 *">>, <<"UTC">>, After, 2)
    ).

describe_english(_Config) ->
    ?assertEqual({ok, <<"At 12:00, on Sunday">>}, emqx_guard_nif:describe(<<"0 12 * * 0">>)),
    {ok, Daily} = emqx_guard_nif:describe(<<"30 2 * * *">>),
    ?assertNotEqual(nomatch, string:find(Daily, <<"02:30">>)),
    ?assertMatch({error, {out_of_range, _}}, emqx_guard_nif:describe(<<"0 24 * * *">>)).

resolve_zone_names(_Config) ->
    ?assertEqual({ok, <<"Europe/Berlin">>}, emqx_guard_nif:resolve_zone(<<"Europe/Berlin">>)),
    {ok, Local} = emqx_guard_nif:resolve_zone(<<"local">>),
    ?assertNotEqual(<<"local">>, Local),
    %% The node's zone is itself a zone name the core accepts.
    ?assertEqual({ok, Local}, emqx_guard_nif:resolve_zone(Local)),
    ?assertMatch({error, {bad_zone, _}}, emqx_guard_nif:resolve_zone(<<"Europe/Atlantis">>)).

utc_offset_seconds(_Config) ->
    ?assertEqual({ok, 3600}, emqx_guard_nif:utc_offset(<<"Europe/Berlin">>, ms("2026-01-15T12:00:00Z"))),
    ?assertEqual({ok, 7200}, emqx_guard_nif:utc_offset(<<"Europe/Berlin">>, ms("2026-07-15T12:00:00Z"))),
    ?assertEqual({ok, 19800}, emqx_guard_nif:utc_offset(<<"Asia/Kolkata">>, ms("2026-07-15T12:00:00Z"))),
    ?assertEqual({ok, -18000}, emqx_guard_nif:utc_offset(<<"America/New_York">>, ms("2026-01-15T12:00:00Z"))),
    ?assertMatch({error, {bad_zone, _}}, emqx_guard_nif:utc_offset(<<"Nowhere">>, 0)).

%%--------------------------------------------------------------------------------------------
%% Retention
%%--------------------------------------------------------------------------------------------

list_backups_newest_first(Config) ->
    Dir = ?config(dir, Config),
    Names = [
        "emqx-export-2026-01-02-10-00-00.000.tar.gz",
        "emqx-export-2025-12-31-23-59-59.999.tar.gz",
        "emqx-export-2026-01-02-10-00-00.001.tar.gz",
        "emqx-export-2026-01-01-00-00-00.000.tar.gz"
    ],
    [write(filename:join(Dir, N), binary:copy(<<"x">>, I)) || {I, N} <- lists:enumerate(Names)],
    %% Invisible to retention: other names, a directory and a symlink with export names.
    write(filename:join(Dir, "my-upload.tar.gz"), <<"u">>),
    write(filename:join(Dir, "emqx-export-2026-01-03-00-00-00.000.tar.gz.tmp"), <<"t">>),
    write(filename:join(Dir, "emqx-export-2026-1-03-00-00-00.000.tar.gz"), <<"t">>),
    ok = file:make_dir(filename:join(Dir, "emqx-export-2026-01-04-00-00-00.000.tar.gz")),
    ok = file:make_symlink(
        filename:join(Dir, hd(Names)), filename:join(Dir, "emqx-export-2026-01-05-00-00-00.000.tar.gz")
    ),
    {ok, Backups} = emqx_guard_nif:list_backups(bin(Dir)),
    ?assertEqual(
        [
            <<"emqx-export-2026-01-02-10-00-00.001.tar.gz">>,
            <<"emqx-export-2026-01-02-10-00-00.000.tar.gz">>,
            <<"emqx-export-2026-01-01-00-00-00.000.tar.gz">>,
            <<"emqx-export-2025-12-31-23-59-59.999.tar.gz">>
        ],
        [N || #{name := N} <- Backups]
    ),
    [First | _] = Backups,
    FirstPath = filename:join(Dir, "emqx-export-2026-01-02-10-00-00.001.tar.gz"),
    Mtime = ms("2026-01-02T10:00:01Z") div 1000,
    ok = file:write_file_info(FirstPath, #file_info{mtime = Mtime}, [{time, posix}]),
    {ok, [Again | _]} = emqx_guard_nif:list_backups(bin(Dir)),
    ?assertEqual(First#{mtime := Mtime * 1000}, Again),
    ?assertEqual(
        #{
            name => <<"emqx-export-2026-01-02-10-00-00.001.tar.gz">>,
            path => bin(FirstPath),
            size => 3,
            mtime => Mtime * 1000
        },
        Again
    ),
    %% An empty directory lists nothing.
    Empty = filename:join(Dir, "empty"),
    ok = file:make_dir(Empty),
    ?assertEqual({ok, []}, emqx_guard_nif:list_backups(bin(Empty))).

list_backups_errors(Config) ->
    Dir = ?config(dir, Config),
    File = filename:join(Dir, "plain-file"),
    write(File, <<"x">>),
    {error, {R1, D1}} = emqx_guard_nif:list_backups(bin(File)),
    ?assertEqual(not_a_directory, R1),
    assert_one_line(D1),
    ?assertMatch({error, {not_a_directory, _}}, emqx_guard_nif:list_backups(bin(filename:join(Dir, "missing")))).

%% Paths cross the NIF byte for byte: a directory whose name is not valid UTF-8 works, and the
%% paths returned are the same bytes.
paths_are_raw_bytes(Config) ->
    Dir = bin(?config(dir, Config)),
    Raw = <<Dir/binary, "/caf", 16#e9, "-backups">>,
    ok = file:make_dir(Raw),
    Name = <<"emqx-export-2026-05-06-07-08-09.010.tar.gz">>,
    %% a good export (prune verifies what it keeps), made elsewhere and moved in
    Made = make_export(filename:join(?config(dir, Config), "made"), "emqx-export-2026-05-06-07-08-09.010", ok),
    ok = file:rename(Made, <<Raw/binary, "/", Name/binary>>),
    Size = filelib:file_size(<<Raw/binary, "/", Name/binary>>),
    ?assertMatch(
        {ok, [#{name := Name, path := <<Raw:(byte_size(Raw))/binary, "/", Name/binary>>, size := Size}]},
        emqx_guard_nif:list_backups(Raw)
    ),
    Older = <<"emqx-export-2025-05-06-07-08-09.010.tar.gz">>,
    ok = file:write_file(<<Raw/binary, "/", Older/binary>>, <<"ab">>),
    {ok, #{deleted := [#{path := Deleted}]}} = prune(Raw, 1, <<"/none">>, false),
    ?assertEqual(<<Raw/binary, "/", Older/binary>>, Deleted),
    ?assertEqual({error, enoent}, file:read_file_info(Deleted)).

prune_keeps_newest(Config) ->
    Dir = ?config(dir, Config),
    Names = make_backups(Dir, 5),
    Other = filename:join(Dir, "hand-made.tar.gz"),
    write(Other, <<"keep me">>),
    {ok, #{deleted := Deleted, failed := Failed}} = prune(bin(Dir), 2, undefined, false),
    ?assertEqual([], Failed),
    %% The three oldest, oldest first, each with the Backup keys.
    ?assertEqual([bin(N) || N <- lists:sublist(Names, 3)], [N || #{name := N} <- Deleted]),
    lists:foreach(
        fun(#{path := P, size := S, mtime := M}) ->
            ?assert(is_integer(S) andalso is_integer(M)),
            ?assertNot(filelib:is_file(P))
        end,
        Deleted
    ),
    {ok, Left} = emqx_guard_nif:list_backups(bin(Dir)),
    ?assertEqual([bin(N) || N <- lists:reverse(lists:nthtail(3, Names))], [N || #{name := N} <- Left]),
    ?assert(filelib:is_regular(Other)),
    %% Nothing more to do.
    ?assertMatch(
        {ok, #{deleted := [], failed := [], skipped_unverified := []}},
        prune(bin(Dir), 2, undefined, false)
    ).

prune_dry_run_and_protect(Config) ->
    Dir = ?config(dir, Config),
    Names = make_backups(Dir, 4),
    {ok, #{deleted := Would, failed := []}} = prune(bin(Dir), 1, undefined, true),
    ?assertEqual([bin(N) || N <- lists:sublist(Names, 3)], [N || #{name := N} <- Would]),
    {ok, All} = emqx_guard_nif:list_backups(bin(Dir)),
    ?assertEqual(4, length(All)),
    %% Protect the oldest: it survives besides the newest two, which it never displaces.
    Oldest = filename:join(Dir, hd(Names)),
    {ok, #{deleted := Deleted, failed := []}} = prune(bin(Dir), 2, bin(Oldest), false),
    ?assertEqual([bin(lists:nth(2, Names))], [N || #{name := N} <- Deleted]),
    ?assert(filelib:is_regular(Oldest)),
    ?assert(lists:all(fun filelib:is_regular/1, [filename:join(Dir, N) || N <- lists:nthtail(2, Names)])).

prune_reports_failed_delete(Config) ->
    Dir = ?config(dir, Config),
    Names = make_backups(Dir, 3),
    Stuck = filename:join(Dir, hd(Names)),
    case make_undeletable(Stuck) of
        {skip, _} = Skip ->
            Skip;
        ok ->
            try
                {ok, #{deleted := Deleted, failed := Failed}} =
                    prune(bin(Dir), 1, undefined, false),
                ?assertEqual([bin(lists:nth(2, Names))], [N || #{name := N} <- Deleted]),
                ?assertMatch([#{name := _, path := _, size := _, mtime := _, error := _}], Failed),
                [#{name := FailedName, error := Why}] = Failed,
                ?assertEqual(bin(hd(Names)), FailedName),
                ?assert(is_binary(Why) andalso byte_size(Why) > 0),
                assert_one_line(Why)
            after
                os:cmd("chattr -i '" ++ Stuck ++ "'")
            end
    end.

prune_errors(Config) ->
    Dir = ?config(dir, Config),
    _ = make_backups(Dir, 2),
    {error, {bad_keep, D0}} = prune(bin(Dir), 0, undefined, false),
    assert_one_line(D0),
    ?assertMatch({error, {bad_keep, _}}, prune(bin(Dir), -3, undefined, true)),
    {ok, Still} = emqx_guard_nif:list_backups(bin(Dir)),
    ?assertEqual(2, length(Still)),
    ?assertMatch(
        {error, {not_a_directory, _}},
        prune(bin(filename:join(Dir, "nope")), 1, undefined, false)
    ).

%%--------------------------------------------------------------------------------------------
%% Verification
%%--------------------------------------------------------------------------------------------

verify_good_export(Config) ->
    Dir = ?config(dir, Config),
    Base = "emqx-export-2026-02-03-04-05-06.789",
    Path = make_export(Dir, Base, good),
    {ok, Bin} = file:read_file(Path),
    ?assertEqual(
        {ok, #{
            entries => 3,
            bytes => byte_size(?META) + byte_size(cluster_conf()) + byte_size(admin_table()),
            version => <<"5.3.2">>,
            edition => <<"ce">>,
            sha256 => hex(crypto:hash(sha256, Bin))
        }},
        verify(bin(Path))
    ).

verify_real_fixture(Config) ->
    Dir = ?config(dir, Config),
    Path = filename:join(Dir, ?FIXTURE_NAME),
    {ok, _} = file:copy(filename:join(?FIXTURE_DIR, ?FIXTURE_NAME), Path),
    {ok, Bin} = file:read_file(Path),
    {ok, V} = verify(bin(Path)),
    ?assertMatch(#{entries := 9, version := <<"5.3.2">>, edition := <<"ce">>}, V),
    ?assertEqual(hex(crypto:hash(sha256, Bin)), maps:get(sha256, V)),
    %% The same bytes under another export name no longer match the top directory.
    Renamed = filename:join(Dir, "emqx-export-2026-11-27-18-58-46.000.tar.gz"),
    {ok, _} = file:copy(Path, Renamed),
    ?assertMatch({error, {wrong_top_dir, _}}, verify(bin(Renamed))).

verify_errors(Config) ->
    Dir = ?config(dir, Config),
    Base = "emqx-export-2026-02-03-04-05-06.789",
    Good = make_export(Dir, Base, good),
    {ok, GoodBin} = file:read_file(Good),
    Size = byte_size(GoodBin),
    Sub = fun(Name) -> filename:join(Dir, Name) end,
    %% not_found, empty_file, not_gzip
    ?assertMatch({error, {not_found, _}}, verify(bin(Sub("absent.tar.gz")))),
    write(Sub("empty/" ++ Base ++ ".tar.gz"), <<>>),
    ?assertMatch({error, {empty_file, _}}, verify(bin(Sub("empty/" ++ Base ++ ".tar.gz")))),
    write(Sub("text/" ++ Base ++ ".tar.gz"), <<"this is not a gzip stream\n">>),
    ?assertMatch({error, {not_gzip, _}}, verify(bin(Sub("text/" ++ Base ++ ".tar.gz")))),
    %% truncated at several points
    lists:foreach(
        fun(Cut) ->
            P = Sub("cut" ++ integer_to_list(Cut) ++ "/" ++ Base ++ ".tar.gz"),
            write(P, binary:part(GoodBin, 0, Cut)),
            ?assertMatch({{error, {truncated, _}}, Cut}, {verify(bin(P)), Cut})
        end,
        [20, Size div 2, Size - 4]
    ),
    %% one flipped byte: in the deflate data, in the middle, in the CRC trailer
    lists:foreach(
        fun(At) ->
            <<Pre:At/binary, B, Post/binary>> = GoodBin,
            P = Sub("flip" ++ integer_to_list(At) ++ "/" ++ Base ++ ".tar.gz"),
            write(P, <<Pre/binary, (B bxor 16#ff), Post/binary>>),
            {error, {Reason, Detail}} = verify(bin(P)),
            ?assertEqual({At, corrupt}, {At, Reason}),
            assert_one_line(Detail)
        end,
        [40, Size div 2, Size - 6]
    ),
    %% wrong top directory, missing META.hocon, missing cluster.hocon, a `..' entry
    ?assertMatch(
        {error, {wrong_top_dir, _}},
        verify(bin(make_export(Sub("top"), Base, {top, "emqx-export-2020-01-01-00-00-00.000"})))
    ),
    ?assertMatch({error, {missing_meta, _}}, verify(bin(make_export(Sub("nometa"), Base, no_meta)))),
    ?assertMatch(
        {error, {missing_cluster_conf, _}},
        verify(bin(make_export(Sub("nocluster"), Base, no_cluster)))
    ),
    ?assertMatch({error, {unsafe_path, _}}, verify(bin(make_export(Sub("dotdot"), Base, dotdot)))),
    %% a directory is not a tarball
    ?assertMatch({error, {io, _}}, verify(bin(Dir))).

%%--------------------------------------------------------------------------------------------
%% Loading, reloading, panics
%%--------------------------------------------------------------------------------------------

%% EMQX (up to 5.8) purges and reloads every beam of a plugin on restart while the old
%% instance may still hold the library. Both orders of events must leave a working NIF.
reload_ten_times(Config) ->
    Dir = ?config(dir, Config),
    Base = "emqx-export-2026-02-03-04-05-06.789",
    Tarball = bin(make_export(Dir, Base, good)),
    {ok, Before} = verify(Tarball),
    {emqx_guard_nif, Beam, BeamFile} = code:get_object_code(emqx_guard_nif),
    lists:foreach(
        fun(I) ->
            true = is_boolean(code:purge(emqx_guard_nif)),
            case I rem 3 of
                0 ->
                    %% What EMQX does: purge, then load over the current instance.
                    ?assertEqual({module, emqx_guard_nif}, code:load_file(emqx_guard_nif));
                1 ->
                    %% The current instance becomes old first.
                    true = code:delete(emqx_guard_nif),
                    ?assertEqual({module, emqx_guard_nif}, code:load_file(emqx_guard_nif));
                2 ->
                    ?assertEqual({module, emqx_guard_nif}, code:load_binary(emqx_guard_nif, BeamFile, Beam))
            end,
            ?assertEqual({I, {ok, <<"0 1 * * 0">>}}, {I, emqx_guard_nif:validate(<<"0 1  * * 0">>)}),
            ?assertEqual({I, {ok, Before}}, {I, verify(Tarball)})
        end,
        lists:seq(1, 10)
    ),
    ?assertEqual(undefined, persistent_term:get({emqx_guard_nif, load_error}, undefined)).

panic_becomes_error(_Config) ->
    Watcher = spawn(fun() -> receive stop -> ok end end),
    ?assertError(nif_panicked, emqx_guard_nif:panic_probe()),
    %% Again from a fresh process, which survives to report its result.
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() ->
        Self ! {caught, try emqx_guard_nif:panic_probe() catch error:R:St -> {'EXIT', {R, St}} end}
    end),
    receive
        {caught, Caught} -> ?assertMatch({'EXIT', {nif_panicked, _}}, Caught)
    after 5000 -> ct:fail(no_reply_from_panicking_process)
    end,
    receive
        {'DOWN', Ref, process, Pid, Exit} -> ?assertEqual(normal, Exit)
    after 5000 -> ct:fail(no_down)
    end,
    %% The node and the library carry on.
    ?assert(is_process_alive(Watcher)),
    ?assertEqual({ok, <<"* * * * *">>}, emqx_guard_nif:validate(<<"* * * * *">>)),
    Watcher ! stop.

%% The module is loaded, from a copy of its beam, in a separate node (so this node's instance
%% is untouched) whose ../priv/<arch> holds a garbage library, and then no library for this
%% node's architecture at all (only one for another architecture).
broken_or_missing_library(Config) ->
    Dir = ?config(dir, Config),
    Ebin = filename:join(Dir, "ebin"),
    Priv = filename:join(Dir, "priv"),
    Arch = hd(string:split(erlang:system_info(system_architecture), "-")),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    ok = filelib:ensure_dir(filename:join([Priv, Arch, "x"])),
    {ok, _} = file:copy(code:which(emqx_guard_nif), filename:join(Ebin, "emqx_guard_nif.beam")),
    So = filename:join([Priv, Arch, "emqx_guard_nif.so"]),
    %% a working library, but for another architecture, is never picked
    Other = filename:join([Priv, "other-arch", "emqx_guard_nif.so"]),
    ok = filelib:ensure_dir(Other),
    {ok, _} = file:copy(emqx_guard_nif:library_path(), Other),
    write(So, <<"this is not an ELF shared object\n">>),
    %% ERL_LIBS cleared so that code:priv_dir(emqx_guard) cannot find the real library.
    {ok, Peer, _Node} = peer:start_link(#{
        connection => standard_io,
        args => ["-pa", Ebin],
        env => [{"ERL_LIBS", ""}]
    }),
    try
        ?assertEqual({module, emqx_guard_nif}, peer:call(Peer, code, ensure_loaded, [emqx_guard_nif])),
        ?assertEqual(Arch, peer:call(Peer, emqx_guard_nif, architecture, [])),
        ?assertEqual(So, peer:call(Peer, emqx_guard_nif, library_path, [])),
        {error, {nif_not_loaded, Path1, Reason1}} = call_error(Peer, validate, [<<"* * * * *">>]),
        ?assertEqual(So, Path1),
        ?assertMatch({load_failed, _}, Reason1),
        %% The same for a job NIF.
        ?assertMatch({error, {nif_not_loaded, So, _}}, call_error(Peer, verify_async, [<<"/tmp/x.tar.gz">>, #{}])),
        %% Now without any library file.
        ok = file:delete(So),
        true = is_boolean(peer:call(Peer, code, purge, [emqx_guard_nif])),
        true = peer:call(Peer, code, delete, [emqx_guard_nif]),
        {module, emqx_guard_nif} = peer:call(Peer, code, load_file, [emqx_guard_nif]),
        {error, {nif_not_loaded, Path2, {load_failed, Text2}}} = call_error(Peer, panic_probe, []),
        %% the error names the file looked for, so the architecture
        ?assertEqual(So, Path2),
        ?assertEqual(Arch, filename:basename(filename:dirname(Path2))),
        ?assertNotEqual(nomatch, string:find(Text2, filename:join(Arch, "emqx_guard_nif")))
    after
        peer:stop(Peer)
    end.

%%--------------------------------------------------------------------------------------------
%% Verification records and background jobs (issue 13)
%%--------------------------------------------------------------------------------------------

recorded_verification_is_trusted(Config) ->
    Dir = ?config(dir, Config),
    Names = make_backups(Dir, 4),
    {ok, First} = prune(bin(Dir), 3, undefined, true, []),
    #{verified := Records, bytes_read := Read1, deleted := [#{name := Oldest}]} = First,
    ?assertEqual(bin(hd(Names)), Oldest),
    ?assertEqual(lists:reverse([bin(N) || N <- tl(Names)]), [N || #{name := N} <- Records]),
    ?assert(Read1 > 0),
    [?assertMatch(#{result := ok, sha256 := <<_:64/binary>>, version := <<"5.3.2">>}, R) || R <- Records],
    %% Trusted: nothing is read, nothing new is recorded, the same decision.
    {ok, Second} = prune(bin(Dir), 3, undefined, false, Records),
    ?assertMatch(#{verified := [], bytes_read := 0, deleted := [#{name := Oldest}]}, Second),
    %% Without the records every export it needs is read again; nothing is left to delete.
    ?assertMatch(
        {ok, #{deleted := [], failed := [], skipped_unverified := [], verified := [_, _, _]}},
        prune(bin(Dir), 3, undefined, false)
    ).

%% Touched (same bytes, new mtime): read again, still good. Truncated, and replaced by a damaged
%% file of the same size: read again, bad, not counted (the next older one takes its place).
changed_file_is_verified_again(Config) ->
    Dir = ?config(dir, Config),
    lists:foreach(
        fun(Change) ->
            Sub = filename:join(Dir, atom_to_list(Change)),
            Names = make_backups(Sub, 4),
            {ok, #{verified := Records}} = prune(bin(Sub), 2, undefined, true, []),
            Victim = filename:join(Sub, lists:nth(4, Names)),
            {ok, Bin} = file:read_file(Victim),
            case Change of
                touched ->
                    timer:sleep(10),
                    ok = file:change_time(Victim, calendar:local_time());
                truncated ->
                    write(Victim, binary:part(Bin, 0, byte_size(Bin) div 2));
                replaced_same_size ->
                    Half = byte_size(Bin) div 2,
                    <<Pre:Half/binary, B, Post/binary>> = Bin,
                    Tmp = Victim ++ ".tmp",
                    write(Tmp, <<Pre/binary, (B bxor 16#ff), Post/binary>>),
                    ok = file:rename(Tmp, Victim)
            end,
            {ok, Again} = prune(bin(Sub), 2, undefined, true, Records),
            #{verified := Now, skipped_unverified := Skipped, deleted := Deleted} = Again,
            [#{name := Re, result := Result} | _] = Now,
            ?assertEqual({Change, bin(lists:nth(4, Names))}, {Change, Re}),
            case Change of
                touched ->
                    ?assertEqual({Change, ok}, {Change, Result}),
                    ?assertEqual({Change, [bin(N) || N <- lists:sublist(Names, 2)]}, {Change, [N || #{name := N} <- Deleted]});
                _ ->
                    ?assertMatch({_, {error, {_, _}}}, {Change, Result}),
                    ?assertEqual({Change, [bin(lists:nth(4, Names))]}, {Change, [N || #{name := N} <- Skipped]}),
                    ?assertEqual({Change, [bin(hd(Names))]}, {Change, [N || #{name := N} <- Deleted]})
            end
        end,
        [touched, truncated, replaced_same_size]
    ).

list_verified_trusts_records(Config) ->
    Dir = ?config(dir, Config),
    _ = make_backups(Dir, 3),
    {ok, #{backups := Backups, verified := Records, bytes_read := Read}} =
        list_verified(bin(Dir), []),
    ?assertEqual(3, length(Backups)),
    ?assertEqual(3, length(Records)),
    ?assert(Read > 0),
    Mine = [R#{note => mine} || R <- Records],
    {ok, #{backups := Again, verified := [], bytes_read := 0}} = list_verified(bin(Dir), Mine),
    ?assertEqual(Mine, [V || #{verification := V} <- Again]),
    ?assertMatch({error, {bad_record, _}}, list_verified(bin(Dir), [#{name => <<"x">>}])).

verify_async_delivers_a_record(Config) ->
    Dir = ?config(dir, Config),
    Path = bin(make_export(Dir, "emqx-export-2026-02-03-04-05-06.789", good)),
    {ok, Job} = emqx_guard_nif:verify_async(Path, #{io_limit => 10000000}),
    Record = receive_job(Job),
    ?assertMatch({ok, #{result := ok, name := <<"emqx-export-2026-02-03-04-05-06.789.tar.gz">>}}, Record),
    {ok, #{sha256 := Sha, size := Size, inode := Inode}} = Record,
    {ok, Whole} = file:read_file(Path),
    ?assertEqual(hex(crypto:hash(sha256, Whole)), Sha),
    {ok, Info} = file:read_file_info(Path),
    ?assertEqual({Info#file_info.size, Info#file_info.inode}, {Size, Inode}),
    %% A bad file is a verdict too; a missing one is not.
    Bad = filename:join(Dir, "emqx-export-2026-02-03-04-05-07.000.tar.gz"),
    write(Bad, <<"not gzip">>),
    {ok, J2} = emqx_guard_nif:verify_async(bin(Bad), #{}),
    ?assertMatch({ok, #{result := {error, {not_gzip, _}}, sha256 := undefined}}, receive_job(J2)),
    {ok, J3} = emqx_guard_nif:verify_async(bin(filename:join(Dir, "absent.tar.gz")), #{}),
    ?assertMatch({error, {not_found, _}}, receive_job(J3)),
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end).

%% A job reading a 16 MiB export at 1 MiB/s is cancelled: it says so at once and its thread ends.
cancel_leaves_no_thread(Config) ->
    Dir = ?config(dir, Config),
    Path = bin(big_file(Dir, 16)),
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end),
    Before = os_threads(),
    {ok, Job} = emqx_guard_nif:verify_async(Path, #{io_limit => 1048576}),
    timer:sleep(200),
    ?assertEqual(Before + 1, os_threads()),
    ?assertEqual(1, emqx_guard_ct_helper:job_threads()),
    T0 = erlang:monotonic_time(millisecond),
    ok = emqx_guard_nif:cancel(Job),
    ?assertMatch({error, {cancelled, _}}, receive_job(Job)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    wait_until(fun() -> os_threads() =:= Before andalso emqx_guard_ct_helper:job_threads() =:= 0 end),
    %% Cancelling a finished job is fine.
    ok = emqx_guard_nif:cancel(Job),
    %% cancel_all too.
    {ok, J1} = emqx_guard_nif:verify_async(Path, #{io_limit => 1048576}),
    {ok, J2} = emqx_guard_nif:verify_async(Path, #{io_limit => 1048576}),
    ?assertEqual(2, emqx_guard_nif:cancel_all()),
    ?assertMatch({error, {cancelled, _}}, receive_job(J1)),
    ?assertMatch({error, {cancelled, _}}, receive_job(J2)),
    wait_until(fun() -> os_threads() =:= Before andalso emqx_guard_ct_helper:job_threads() =:= 0 end).

%% The process that started a job exits (the plugin stopping kills its run worker): the job is
%% cancelled and no thread is left.
caller_exit_cancels_the_job(Config) ->
    Dir = ?config(dir, Config),
    Path = bin(big_file(Dir, 16)),
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end),
    Before = os_threads(),
    Self = self(),
    Pid = spawn(fun() ->
        {ok, _Job} = emqx_guard_nif:verify_async(Path, #{io_limit => 1048576}),
        Self ! started,
        receive never -> ok end
    end),
    receive started -> ok after 5000 -> ct:fail(not_started) end,
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 1 end),
    exit(Pid, kill),
    wait_until(fun() -> os_threads() =:= Before andalso emqx_guard_ct_helper:job_threads() =:= 0 end).

async_argument_errors(Config) ->
    Dir = ?config(dir, Config),
    ?assertMatch({error, {bad_opts, _}}, emqx_guard_nif:verify_async(<<"/x">>, #{io_limit => 0})),
    ?assertMatch({error, {bad_opts, _}}, emqx_guard_nif:verify_async(<<"/x">>, #{limit => 1})),
    ?assertError(badarg, emqx_guard_nif:verify_async(<<"/x">>, [])),
    ?assertError(badarg, emqx_guard_nif:cancel(make_ref())),
    ?assertMatch({error, {bad_keep, _}}, emqx_guard_nif:prune_async(bin(Dir), -1, undefined, true, [], #{})),
    {ok, J} = emqx_guard_nif:prune_async(bin(filename:join(Dir, "nope")), 1, undefined, true, [], #{}),
    ?assertMatch({error, {not_a_directory, _}}, receive_job(J)),
    _ = make_backups(Dir, 2),
    {ok, J2} = emqx_guard_nif:prune_async(bin(Dir), 1, undefined, true, [], #{}),
    ?assertMatch({ok, #{deleted := [_], verified := [_], bytes_read := _}}, receive_job(J2)),
    {ok, J3} = emqx_guard_nif:list_verified_async(bin(Dir), [], #{io_limit => infinity}),
    ?assertMatch({ok, #{backups := [_, _], verified := [_, _]}}, receive_job(J3)),
    wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end).

%% prune_async says how far it got, in order and before its result: once after listing (what it
%% has to read at least), then after each file read, with that file's record (the same records
%% the result lists in `verified').
prune_async_reports_each_verdict(Config) ->
    Dir = ?config(dir, Config),
    NewestFirst = lists:reverse(make_backups(Dir, 4)),
    Sizes = [filelib:file_size(filename:join(Dir, N)) || N <- NewestFirst],
    {ok, Job} = emqx_guard_nif:prune_async(bin(Dir), 3, undefined, false, [], #{}),
    [{progress, First} | Rest] = job_messages(Job),
    Needed = lists:sum(lists:sublist(Sizes, 3)),
    ?assertEqual(#{checked => 0, checked_bytes => 0, remaining => 3, remaining_bytes => Needed, bytes_read => 0}, First),
    {Reports, [{result, {ok, #{verified := Verified, deleted := [#{name := Oldest}]}}}]} = lists:split(3, Rest),
    ?assertEqual(bin(lists:last(NewestFirst)), Oldest),
    ?assertEqual(Verified, [R || {progress, #{record := R}} <- Reports]),
    ?assertEqual([bin(N) || N <- lists:sublist(NewestFirst, 3)], [N || {progress, #{record := #{name := N}}} <- Reports]),
    ?assertEqual([{1, 2}, {2, 1}, {3, 0}], [{C, L} || {progress, #{checked := C, remaining := L}} <- Reports]),
    {progress, #{checked_bytes := Done, bytes_read := Read}} = lists:last(Reports),
    ?assertEqual({Needed, Needed}, {Done, Read}).

%% The progress reports of Job, then its result: `[{progress, P} | ...] ++ [{result, R}]'.
job_messages(Job) ->
    receive
        {emqx_guard_job_progress, Job, Progress} -> [{progress, Progress} | job_messages(Job)];
        {emqx_guard_job, Job, Result} -> [{result, Result}]
    after 10000 -> ct:fail({no_message_from_job, Job})
    end.

%%--------------------------------------------------------------------------------------------
%% Off-site copies against a real S3 server (s3s-fs, SigV4 on; `make test-deps' installs it)
%%--------------------------------------------------------------------------------------------

-define(S3_SECRET, (emqx_guard_s3_helper:secret_key())).

%% The fixture goes up encrypted through upload_async, is listed by list_async, comes back
%% byte-identical (and verified) through fetch_async, and prune_async keeps the newest.
offsite_upload_list_fetch_prune(Config) ->
    Dir = ?config(dir, Config),
    S3 = emqx_guard_s3_helper:start(?config(dir, Config)),
    try
        Cfg = s3_config(S3, #{recipient => recipient(Config)}),
        Src = filename:join(Dir, "src"),
        Dest = filename:join(Dir, "dest"),
        ok = filelib:ensure_dir(filename:join(Src, "x")),
        ok = filelib:ensure_dir(filename:join(Dest, "x")),
        Fixture = filename:join(?FIXTURE_DIR, ?FIXTURE_NAME),
        {ok, _} = file:copy(Fixture, filename:join(Src, ?FIXTURE_NAME)),
        Other = bin(make_export(Src, "emqx-export-2026-01-01-00-00-00.000", good)),
        {ok, J1} = emqx_guard_core:offsite_upload_async(Cfg, filename:join(Src, ?FIXTURE_NAME), #{}),
        Name = <<?FIXTURE_NAME, ".age">>,
        {ok, Up} = receive_job(J1),
        ?assertMatch(#{name := Name, key := <<"ct/", Name/binary>>, encrypted := true, parts := 0,
                       reused := false}, Up),
        {ok, Whole} = file:read_file(Fixture),
        ?assertEqual(hex(crypto:hash(sha256, Whole)), maps:get(sha256, Up)),
        ?assertEqual(byte_size(Whole), maps:get(source_size, Up)),
        %% The bucket holds ciphertext only; the upload says what it stored.
        {ok, Stored} = file:read_file(emqx_guard_s3_helper:object_file(S3, maps:get(key, Up))),
        ?assertMatch(<<"age-encryption.org/v1\n", _/binary>>, Stored),
        ?assertEqual(hex(crypto:hash(sha256, Stored)), maps:get(stored_sha256, Up)),
        ?assertEqual(byte_size(Stored), maps:get(size, Up)),
        %% The same export again: the object is kept, nothing is sent.
        {ok, J1b} = emqx_guard_core:offsite_upload_async(Cfg, filename:join(Src, ?FIXTURE_NAME), #{}),
        {ok, Again} = receive_job(J1b),
        ?assertEqual(Up#{reused := true}, Again),
        ?assertEqual({ok, Stored}, file:read_file(emqx_guard_s3_helper:object_file(S3, maps:get(key, Up)))),
        {ok, J2} = emqx_guard_nif:offsite_upload_async(Cfg, Other, #{io_limit => 50000000}),
        ?assertMatch({ok, #{encrypted := true}}, receive_job(J2)),
        {ok, J3} = emqx_guard_nif:offsite_list_async(Cfg, #{}),
        {ok, Listed} = receive_job(J3),
        ?assertMatch(
            [#{name := Name, export_name := <<?FIXTURE_NAME>>, encrypted := true},
             #{name := <<"emqx-export-2026-01-01-00-00-00.000.tar.gz.age">>}],
            Listed),
        [#{size := Size, mtime := Mtime} | _] = Listed,
        ?assertEqual(byte_size(Stored), Size),
        ?assert(erlang:system_time(millisecond) - Mtime < 600000),
        Identity = bin(filename:join(?config(data_dir, Config), "offsite_identity.txt")),
        {ok, J4} = emqx_guard_core:offsite_fetch_async(Cfg, <<?FIXTURE_NAME>>, Identity, Dest, #{}),
        {ok, Got} = receive_job(J4),
        Path = bin(filename:join(Dest, ?FIXTURE_NAME)),
        ?assertMatch(#{name := <<?FIXTURE_NAME>>, path := Path, encrypted := true,
                       verified := #{version := <<"5.3.2">>},
                       checked_by := [stored_sha256, age, export_sha256, verify]}, Got),
        ?assertEqual({ok, Whole}, file:read_file(Path)),
        {ok, Info} = file:read_file_info(Path),
        ?assertEqual(8#600, Info#file_info.mode band 8#777),
        ?assertEqual({ok, [?FIXTURE_NAME]}, file:list_dir(Dest)),
        %% Remote retention: a dry run reports, a real one deletes the older export only.
        {ok, J5} = emqx_guard_nif:offsite_prune_async(Cfg, 1, true, #{}),
        ?assertMatch({ok, #{kept := [#{name := Name}],
                            deleted := [#{name := <<"emqx-export-2026-01-01-00-00-00.000.tar.gz.age">>}],
                            failed := []}}, receive_job(J5)),
        {ok, J6} = emqx_guard_nif:offsite_prune_async(Cfg, 1, false, #{}),
        ?assertMatch({ok, #{deleted := [_]}}, receive_job(J6)),
        {ok, J7} = emqx_guard_nif:offsite_list_async(Cfg, #{}),
        ?assertMatch({ok, [#{name := Name}]}, receive_job(J7)),
        wait_until(fun() -> emqx_guard_ct_helper:job_threads() =:= 0 end)
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% A wrong secret key is `auth' and the Detail never holds it; a wrong identity is `decrypt'
%% and nothing is written; every altered byte of a stored object, plain or encrypted (header,
%% body, last chunk, one byte cut, one byte added), is refused by the stored checksum before
%% anything is decrypted, and nothing is written.
offsite_errors_are_clear_and_leave_nothing(Config) ->
    Dir = ?config(dir, Config),
    S3 = emqx_guard_s3_helper:start(?config(dir, Config)),
    try
        Cfg = s3_config(S3, #{recipient => recipient(Config)}),
        Plain = s3_config(S3, #{}),
        Export = bin(make_export(Dir, "emqx-export-2026-01-02-00-00-00.000", {big, 300000})),
        Wrong = <<"WRONG-secret-value-9876543210">>,
        {ok, J1} = emqx_guard_nif:offsite_upload_async(Cfg#{secret_key => Wrong}, Export, #{}),
        {error, {auth, Detail}} = receive_job(J1),
        assert_one_line(Detail),
        ?assertEqual(nomatch, binary:match(Detail, [Wrong, ?S3_SECRET])),
        {ok, J2} = emqx_guard_nif:offsite_upload_async(Cfg, Export, #{}),
        {ok, #{name := Name} = Encrypted} = receive_job(J2),
        Dest = filename:join(Dir, "dest"),
        ok = filelib:ensure_dir(filename:join(Dest, "x")),
        WrongId = bin(filename:join(?config(data_dir, Config), "offsite_wrong_identity.txt")),
        {ok, J3} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, WrongId, bin(Dest), #{}),
        ?assertMatch({error, {decrypt, _}}, receive_job(J3)),
        ?assertEqual({ok, []}, file:list_dir(Dest)),
        {ok, J4} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, undefined, bin(Dest), #{}),
        ?assertMatch({error, {decrypt, _}}, receive_job(J4)),
        Identity = bin(filename:join(?config(data_dir, Config), "offsite_identity.txt")),
        refused_when_altered(S3, Cfg, Encrypted, Identity, Dest),
        {ok, J5} = emqx_guard_nif:offsite_upload_async(Plain, Export, #{}),
        {ok, #{encrypted := false} = PlainUp} = receive_job(J5),
        refused_when_altered(S3, Plain, PlainUp, undefined, Dest),
        %% Nothing listens: `connect'.
        emqx_guard_s3_helper:stop(S3),
        {ok, J6} = emqx_guard_nif:offsite_list_async(Cfg#{max_retries => 0}, #{}),
        ?assertMatch({error, {connect, _}}, receive_job(J6))
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% Each change of tamper/3 to the stored object Up: `integrity', decided by the stored SHA-256,
%% and Dest stays empty; put back, it fetches again.
refused_when_altered(S3, Cfg, #{name := Name, key := Key, encrypted := Encrypted}, Identity, Dest) ->
    File = emqx_guard_s3_helper:object_file(S3, Key),
    {ok, Original} = file:read_file(File),
    lists:foreach(
        fun(How) ->
            ok = file:write_file(File, tamper(Original, How, Encrypted)),
            {ok, J} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, Identity, bin(Dest), #{}),
            {error, {Reason, Detail}} = receive_job(J),
            ct:pal("~ts ~p: ~p: ~ts", [Name, How, Reason, Detail]),
            ?assertEqual({How, integrity}, {How, Reason}),
            ?assertMatch({How, <<"integrity check failed (stored_sha256): ", _/binary>>}, {How, Detail}),
            assert_one_line(Detail),
            ?assertEqual({How, {ok, []}}, {How, file:list_dir(Dest)})
        end,
        [header, body, last_chunk, cut_one, add_one]),
    ok = file:write_file(File, Original),
    {ok, J} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, Identity, bin(Dest), #{}),
    {ok, #{path := Path, checked_by := [stored_sha256 | _]}} = receive_job(J),
    ok = file:delete(Path).

%% The stored bytes with one change: a header byte (the age header's first line; the gzip MTIME,
%% which no gzip reader checks), the middle byte, a byte of the last age chunk / gzip trailer,
%% the last byte cut, or a byte added.
tamper(Bin, header, true) -> flip(Bin, 5);
tamper(Bin, header, false) -> flip(Bin, 4);
tamper(Bin, body, _) -> flip(Bin, byte_size(Bin) div 2);
tamper(Bin, last_chunk, _) -> flip(Bin, byte_size(Bin) - 3);
tamper(Bin, cut_one, _) -> binary:part(Bin, 0, byte_size(Bin) - 1);
tamper(Bin, add_one, _) -> <<Bin/binary, "\n">>.

flip(Bin, At) ->
    <<Before:At/binary, Byte, After/binary>> = Bin,
    <<Before/binary, (Byte bxor 16#40), After/binary>>.

%% An object without the checksum metadata (s3s-fs's metadata file removed, as a server that
%% drops metadata or another tool would leave it) still fetches, checked by age and
%% verification, and says so; altered, it is refused by age (encrypted) or verification (plain).
offsite_without_metadata_age_and_verify_decide(Config) ->
    Dir = ?config(dir, Config),
    S3 = emqx_guard_s3_helper:start(Dir),
    try
        Identity = bin(filename:join(?config(data_dir, Config), "offsite_identity.txt")),
        Dest = filename:join(Dir, "dest"),
        ok = filelib:ensure_dir(filename:join(Dest, "x")),
        Export = bin(make_export(Dir, "emqx-export-2026-01-03-00-00-00.000", {big, 300000})),
        Cases = [
            {s3_config(S3, #{recipient => recipient(Config)}), Identity, [age, verify],
             integrity, <<"integrity check failed (age): ">>},
            {s3_config(S3, #{}), undefined, [verify],
             verify, <<"the fetched export does not verify (check verify: ">>}
        ],
        lists:foreach(
            fun({Cfg, Id, Checks, Refusal, Prefix}) ->
                {ok, J1} = emqx_guard_nif:offsite_upload_async(Cfg, Export, #{}),
                {ok, #{name := Name, key := Key}} = receive_job(J1),
                ok = drop_metadata(S3, Key),
                {ok, J2} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, Id, bin(Dest), #{}),
                {ok, #{path := Path, checked_by := Checked}} = receive_job(J2),
                ?assertEqual(Checks, Checked),
                {ok, Whole} = file:read_file(Export),
                ?assertEqual({ok, Whole}, file:read_file(Path)),
                ok = file:delete(Path),
                File = emqx_guard_s3_helper:object_file(S3, Key),
                {ok, Original} = file:read_file(File),
                ok = file:write_file(File, tamper(Original, body, Id =/= undefined)),
                {ok, J3} = emqx_guard_nif:offsite_fetch_async(Cfg, Name, Id, bin(Dest), #{}),
                {error, {Reason, Detail}} = receive_job(J3),
                ct:pal("~ts without metadata, altered: ~p: ~ts", [Name, Reason, Detail]),
                ?assertEqual(Refusal, Reason),
                ?assertEqual(Prefix, binary:part(Detail, 0, byte_size(Prefix))),
                assert_one_line(Detail),
                ?assertEqual({ok, []}, file:list_dir(Dest))
            end,
            Cases)
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% s3s-fs keeps an object's metadata in `<root>/.bucket-<bucket>.object-<key>.metadata.json'
%% (both base64url without padding); without that file the object has none.
drop_metadata(#{root := Root}, Key) ->
    B64 = fun(Bin) ->
        Std = base64:encode(Bin),
        Url = binary:replace(binary:replace(Std, <<"+">>, <<"-">>, [global]), <<"/">>, <<"_">>, [global]),
        string:trim(Url, trailing, "=")
    end,
    Name = iolist_to_binary([".bucket-", B64(<<"backups">>), ".object-", B64(Key), ".metadata.json"]),
    file:delete(filename:join(Root, Name)).

%% Argument errors come at once; the secret key is never in a Detail.
offsite_argument_errors(_Config) ->
    Cfg = #{bucket => <<"b">>, access_key => <<"a">>, secret_key => ?S3_SECRET,
            endpoint => <<"http://127.0.0.1:1">>, path_style => true},
    Export = <<"/tmp/emqx-export-2026-01-02-00-00-00.000.tar.gz">>,
    {error, {bad_config, D1}} = emqx_guard_nif:offsite_upload_async(maps:remove(bucket, Cfg), Export, #{}),
    ?assertNotEqual(nomatch, binary:match(D1, <<"bucket">>)),
    {error, {bad_config, D2}} = emqx_guard_nif:offsite_list_async(Cfg#{recipient => <<"age1nope">>}, #{}),
    {error, {bad_config, D3}} = emqx_guard_nif:offsite_list_async(Cfg#{part_size => 1024}, #{}),
    {error, {bad_config, D4}} = emqx_guard_nif:offsite_list_async(Cfg#{tls_verify => 'maybe'}, #{}),
    [?assertEqual(nomatch, binary:match(D, ?S3_SECRET)) || D <- [D1, D2, D3, D4]],
    ?assertMatch({error, {bad_name, _}}, emqx_guard_nif:offsite_upload_async(Cfg, <<"/etc/hostname">>, #{})),
    ?assertMatch({error, {bad_name, _}},
                 emqx_guard_nif:offsite_fetch_async(Cfg, <<"../x">>, undefined, <<"/tmp">>, #{})),
    ?assertMatch({error, {bad_keep, _}}, emqx_guard_nif:offsite_prune_async(Cfg, 0, true, #{})),
    ?assertMatch({error, {bad_opts, _}}, emqx_guard_nif:offsite_list_async(Cfg, #{io_limit => 0})),
    ?assertError(badarg, emqx_guard_nif:offsite_list_async([], #{})),
    ?assertMatch({error, {badarg, _}}, emqx_guard_core:offsite_list_async(Cfg, not_a_map)).

recipient(Config) ->
    {ok, R} = file:read_file(filename:join(?config(data_dir, Config), "offsite_recipient.txt")),
    string:trim(R).

%% The NIF Config for the test server, one retry per request.
s3_config(S3, Extra) ->
    maps:merge(maps:merge(emqx_guard_s3_helper:config(S3), #{max_retries => 1}), Extra).

receive_job(Job) ->
    receive
        {emqx_guard_job, Job, Result} -> Result
    after 10000 -> ct:fail({no_message_from_job, Job})
    end.

os_threads() ->
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    length(Tasks).

wait_until(Fun) -> wait_until(Fun, 500).

wait_until(Fun, 0) ->
    ?assert(Fun());
wait_until(Fun, N) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(10), wait_until(Fun, N - 1)
    end.

%% An export of about MiB mebibytes (random content: gzip cannot shrink it), which verifies.
big_file(Dir, MiB) ->
    make_export(Dir, "emqx-export-2026-05-05-05-05-05.000", {big, MiB * 1024 * 1024}).

%% verify/1 as the plugin gets it, through a job: `{ok, Verified}' (the record's content keys)
%% for an export that verifies, else `{error, {Reason, Detail}}': the record's verdict, or why
%% the check reached none.
verify(Path) ->
    case emqx_guard_nif:verify_async(Path, #{}) of
        {ok, Job} -> verdict(receive_job(Job));
        {error, _} = Error -> Error
    end.

verdict({ok, #{result := ok} = Record}) -> {ok, maps:with([entries, bytes, version, edition, sha256], Record)};
verdict({ok, #{result := {error, _} = Error}}) -> Error;
verdict({error, _} = Error) -> Error.

%% Retention through prune_async/6, its result (the progress reports are prune_async's own case).
prune(Dir, Keep, Protect, DryRun) ->
    prune(Dir, Keep, Protect, DryRun, []).

prune(Dir, Keep, Protect, DryRun, Records) ->
    case emqx_guard_nif:prune_async(Dir, Keep, Protect, DryRun, Records, #{}) of
        {ok, Job} ->
            {result, Result} = lists:last(job_messages(Job)),
            Result;
        {error, _} = Error ->
            Error
    end.

%% The listing of list_verified_async/3.
list_verified(Dir, Records) ->
    case emqx_guard_nif:list_verified_async(Dir, Records, #{}) of
        {ok, Job} -> receive_job(Job);
        {error, _} = Error -> Error
    end.

%%--------------------------------------------------------------------------------------------
%% Helpers
%%--------------------------------------------------------------------------------------------

call_error(Peer, F, Args) ->
    try peer:call(Peer, emqx_guard_nif, F, Args) of
        Result -> {returned, Result}
    catch
        error:Reason -> {error, Reason}
    end.

ms(Rfc3339) ->
    calendar:rfc3339_to_system_time(Rfc3339, [{unit, millisecond}]).

bin(Path) -> unicode:characters_to_binary(Path).

hex(Bin) -> string:lowercase(binary:encode_hex(Bin)).

write(Path, Bin) ->
    ok = filelib:ensure_dir(Path),
    ok = file:write_file(Path, Bin).

assert_one_line(Detail) ->
    ?assert(is_binary(Detail)),
    ?assert(byte_size(Detail) > 0),
    ?assertEqual(nomatch, binary:match(Detail, <<"\n">>)).

%% N empty export files one minute apart; their names, oldest first.
make_backups(Dir, N) ->
    Names = [
        lists:flatten(io_lib:format("emqx-export-2026-03-04-05-~2..0w-00.000.tar.gz", [I]))
     || I <- lists:seq(1, N)
    ],
    %% exports that verify: only those count toward Keep
    [make_export(Dir, filename:basename(Name, ".tar.gz"), ok) || Name <- Names],
    Names.

make_undeletable(Path) ->
    case os:find_executable("chattr") of
        false ->
            {skip, "chattr not available to make a file undeletable"};
        Chattr ->
            _ = os:cmd(Chattr ++ " +i '" ++ Path ++ "' 2>&1"),
            case file:delete(Path) of
                {error, _} ->
                    ok;
                ok ->
                    write(Path, <<"backup">>),
                    {skip, "cannot make a file undeletable here (chattr +i not permitted)"}
            end
    end.

cluster_conf() -> <<"authorization {\n  no_match = allow\n}\n">>.

admin_table() -> binary:copy(<<"emqx_admin row\n">>, 100).

%% An export tarball in EMQX's layout (files only, no directory entries) at Dir/Base.tar.gz.
make_export(Dir, Base, Kind) ->
    Path = filename:join(Dir, Base ++ ".tar.gz"),
    ok = filelib:ensure_dir(Path),
    Top =
        case Kind of
            {top, Other} -> Other;
            _ -> Base
        end,
    Files =
        [{Top ++ "/META.hocon", ?META} || Kind =/= no_meta] ++
            [{Top ++ "/cluster.hocon", cluster_conf()} || Kind =/= no_cluster] ++
            [{Top ++ "/mnesia/emqx_admin", admin_table()}] ++
            [{Top ++ "/mnesia/emqx_retainer_message", crypto:strong_rand_bytes(N)} || {big, N} <- [Kind]] ++
            [{Top ++ "/mnesia/../../evil", <<"x">>} || Kind =:= dotdot],
    {ok, Tar} = erl_tar:open(Path, [write, compressed]),
    [ok = erl_tar:add(Tar, Data, Name, []) || {Name, Data} <- Files],
    ok = erl_tar:close(Tar),
    Path.
