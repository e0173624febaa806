%% @doc The plugin's HTTP API (`emqx_guard_app:on_handle_api_call/4', issue 25) driven over HTTP
%% on 127.0.0.1 through a stand-in of EMQX 6.3's plugin API gateway
%% (`emqx_guard_gateway_standin': path split and percent-decoded, `authorization' and `cookie'
%% stripped, the callback cut off after its timeout, only allow-listed response headers, the JSON
%% body decoded), with the app running against the EMQX stand-ins: every endpoint, every refusal
%% (namespace, viewer, bad input, unknown path), a backup started over the API that finishes while
%% the client polls, and the same facts and rules as the commands.
-module(emqx_guard_api_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    status_and_backups_are_the_commands_documents/1,
    backup_started_over_the_api_finishes_while_polled/1,
    health_is_the_health_checks_verdict/1,
    scheduled_and_typed_runs_are_listed_with_their_steps/1,
    scheduler_killed_mid_run_fails_the_run/1,
    verify_one_backup/1,
    offsite_backups_listed/1,
    restore_dry_run_then_restore/1,
    settings_read_and_changed_with_the_cli_rules/1,
    notify_test_then_its_result/1,
    namespaced_caller_gets_403_for_everything/1,
    viewer_reads_but_cannot_change/1,
    bad_input_and_unknown_paths/1,
    page_is_served_with_allowed_headers_only/1
]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, result/1, wait_until/1, next_timer/1, deliver/1,
                               wait_idle/0]).

-define(T0, {{2026, 11, 25}, {10, 0, 0}}).
-define(ADMIN, <<"admin-token">>).
-define(VIEWER, <<"viewer-token">>).
-define(NS, <<"ns-admin-token">>).

all() ->
    [
        status_and_backups_are_the_commands_documents,
        backup_started_over_the_api_finishes_while_polled,
        health_is_the_health_checks_verdict,
        scheduled_and_typed_runs_are_listed_with_their_steps,
        scheduler_killed_mid_run_fails_the_run,
        verify_one_backup,
        offsite_backups_listed,
        restore_dry_run_then_restore,
        settings_read_and_changed_with_the_cli_rules,
        notify_test_then_its_result,
        namespaced_caller_gets_403_for_everything,
        viewer_reads_but_cannot_change,
        bad_input_and_unknown_paths,
        page_is_served_with_allowed_headers_only
    ].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(inets),
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

%% The off-site case needs a real S3 server (s3s-fs): without it the case fails, as every suite's
%% off-site cases do (failed, not run), unless EMQX_GUARD_SKIP_S3=1 says to skip them.
init_per_testcase(TC, Config) ->
    case {TC, emqx_guard_s3_helper:binary(), os:getenv("EMQX_GUARD_SKIP_S3")} of
        {offsite_backups_listed, false, "1"} -> {skip, "s3s-fs is not installed (EMQX_GUARD_SKIP_S3=1)"};
        {offsite_backups_listed, false, _} -> {fail, "s3s-fs of the off-site tests is not installed, run make test-deps"};
        _ -> start_case(TC, Config)
    end.

start_case(TC, Config) ->
    Config1 = emqx_guard_ct_helper:init_case(TC, Config),
    set_now(?T0),
    start_app(fake_opts(#{})),
    %% the backup case proves the API answers long before its run ends: a gateway of 1 s
    Timeout = case TC of backup_started_over_the_api_finishes_while_polled -> 1000; _ -> 5000 end,
    {ok, GW} = emqx_guard_gateway_standin:start(#{timeout => Timeout}),
    ok = logins(GW),
    [{gw, GW} | Config1].

end_per_testcase(_TC, Config) ->
    emqx_guard_gateway_standin:stop(?config(gw, Config)),
    [emqx_guard_s3_helper:stop(S3) || S3 <- [?config(s3, Config)], S3 =/= undefined],
    emqx_guard_ct_helper:end_case().

%% EMQX's auth_meta for a dashboard login (`emqx_dashboard:authorize/2'): global administrator,
%% global viewer, administrator of namespace ns1.
logins(GW) ->
    Meta = fun(Role, Ns) -> #{auth_type => jwt_token, source => <<"u">>, namespace => Ns,
                              actor => #{actor => <<"u">>, role => Role, namespace => Ns}} end,
    ok = emqx_guard_gateway_standin:add_token(GW, ?ADMIN, Meta(<<"administrator">>, global)),
    ok = emqx_guard_gateway_standin:add_token(GW, ?VIEWER, Meta(<<"viewer">>, global)),
    ok = emqx_guard_gateway_standin:add_token(GW, ?NS, Meta(<<"administrator">>, <<"ns1">>)).

%%--------------------------------------------------------------------

%% `GET status' and `GET backups' are `backup_status --json' and `backup_list --json'; `?why=true'
%% adds what retention does with each, as `backup_list --why' says it; `?remote=true' without a
%% destination is the command's error line.
status_and_backups_are_the_commands_documents(Config) ->
    GW = ?config(gw, Config),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    {200, _, Status} = api(GW, get, "status", ?ADMIN),
    Cli = json(ctl(["backup_status", "--json"])),
    ?assertEqual(maps:get(<<"schedule">>, Cli), maps:get(<<"schedule">>, Status)),
    ?assertEqual(maps:get(<<"last_run">>, Cli), maps:get(<<"last_run">>, Status)),
    ?assertMatch(#{<<"runs">> := #{<<"ok">> := 1}}, Status),
    {200, _, List} = api(GW, get, "backups", ?ADMIN),
    ?assertEqual(json(ctl(["backup_list", "--json"])), List),
    #{<<"backups">> := [#{<<"name">> := Name, <<"state">> := <<"verified">>, <<"pinned">> := false}]} = List,
    {200, _, Why} = api(GW, get, "backups?why=true", ?ADMIN),
    #{<<"keep_policy">> := <<"last=5">>, <<"backups">> := [#{<<"name">> := Name, <<"why">> := Reason}]} = Why,
    [WhyLine] = [L || L <- ctl(["backup_list", "--why"]), string:find(L, binary_to_list(Name)) =/= nomatch],
    ?assertEqual(binary_to_list(Reason), lists:last(string:split(WhyLine, "  -> ", trailing))),
    {503, _, #{<<"code">> := <<"SERVICE_UNAVAILABLE">>, <<"message">> := Msg}} = api(GW, get, "backups?remote=true", ?ADMIN),
    ?assertEqual(#{<<"error">> => Msg}, json(ctl(["backup_list", "--remote", "--json"]))),
    {503, _, #{<<"message">> := Msg}} = api(GW, get, "backups?remote=true&why=true", ?ADMIN).

%% `POST backups' answers 202 with the run's id at once (the gateway here gives a call 1 s; the
%% backup reads 3 MB at 1 MB/s); `GET runs/<id>' shows its steps as they come, then its
%% outcome; the new backup is listed; a second POST while it runs is 409 with the line.
backup_started_over_the_api_finishes_while_polled(Config) ->
    GW = ?config(gw, Config),
    ["backup_io_limit = \"1MB/s\""] = ctl(["backup_io_limit", "1MB/s"]),
    ok = emqx_mgmt_data_backup:set_mode({big, 3000000}),
    T0 = erlang:monotonic_time(millisecond),
    {202, _, #{<<"id">> := Id, <<"poll">> := Poll, <<"run">> := #{<<"state">> := <<"running">>, <<"kind">> := <<"backup">>}}} =
        api(GW, post, "backups", ?ADMIN, #{}),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    ?assertEqual(<<"runs/", Id/binary>>, Poll),
    {409, _, #{<<"code">> := <<"CONFLICT">>}} = api(GW, post, "backups", ?ADMIN, #{}),
    Polls = poll(GW, binary_to_list(Poll), []),
    Running = [P || P = #{<<"state">> := <<"running">>} <- Polls],
    ?assert(length(Running) >= 2, Polls),
    %% seen while it ran: the export done, the verify going on
    ?assert(lists:any(fun(#{<<"steps">> := S}) -> has_step(S, "verify: reading ") andalso not has_step(S, "verify: done") end,
                      Running), Polls),
    Done = #{<<"state">> := <<"ok">>, <<"steps">> := Steps, <<"result">> := Result} = lists:last(Polls),
    ?assert(has_step(Steps, "export: started")),
    ?assert(has_step(Steps, "verify: done in ")),
    ?assert(maps:get(<<"duration_ms">>, Done) >= 1500, Done),
    #{<<"result">> := <<"ok">>, <<"trigger">> := <<"manual">>, <<"file">> := File, <<"size">> := Size} = Result,
    ?assert(Size >= 3000000),
    {200, _, #{<<"backups">> := Backups}} = api(GW, get, "backups", ?ADMIN),
    ?assertMatch([#{<<"name">> := File, <<"state">> := <<"verified">>}], Backups),
    {200, _, #{<<"runs">> := [#{<<"id">> := Id, <<"state">> := <<"ok">>}]}} = api(GW, get, "runs", ?ADMIN),
    %% what the command says of the same run
    Status = json(ctl(["backup_status", "--json"])),
    ?assertEqual(maps:get(<<"last_run">>, Status), Result).

%% `GET status' carries the health check's own verdict (`healthy', `health_error': what
%% `on_health_check/1' tells EMQX), as `backup_status --json' does: healthy at first, not healthy
%% with the check's line after a failed backup, healthy again after a good one.
health_is_the_health_checks_verdict(Config) ->
    GW = ?config(gw, Config),
    {200, _, #{<<"healthy">> := true, <<"health_error">> := null}} = api(GW, get, "status", ?ADMIN),
    ok = emqx_mgmt_data_backup:set_mode({error, disk_gone}),
    ["Error: " ++ _ | _] = result(ctl(["backup_now"])),
    {error, Line} = emqx_guard_app:on_health_check(#{}),
    {200, _, #{<<"healthy">> := false, <<"health_error">> := Line, <<"last_run">> := #{<<"result">> := <<"failed">>}}} =
        api(GW, get, "status", ?VIEWER),
    ?assertMatch({_, _}, binary:match(Line, <<"disk_gone">>)),
    ?assertMatch(#{<<"healthy">> := false, <<"health_error">> := Line}, json(ctl(["backup_status", "--json"]))),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    ok = emqx_guard_app:on_health_check(#{}),
    {200, _, #{<<"healthy">> := true, <<"health_error">> := null}} = api(GW, get, "status", ?ADMIN).

%% `GET runs' lists every backup run on this node, not only those started over the API: a
%% scheduled fire and a `guard backup_now' each appear with their trigger, their steps and their
%% outcome (the scheduler's `last_run'); `GET runs/<id>' is the same document.
scheduled_and_typed_runs_are_listed_with_their_steps(Config) ->
    GW = ?config(gw, Config),
    {200, _, #{<<"runs">> := []}} = api(GW, get, "runs", ?ADMIN),
    %% the schedule's first fire (0 12 * * 0: Sunday noon)
    Timer = next_timer(wake),
    set_now({{2026, 11, 29}, {12, 0, 0}}),
    deliver(Timer),
    wait_idle(),
    #{<<"last_run">> := Scheduled} = json(ctl(["backup_status", "--json"])),
    #{<<"trigger">> := <<"scheduled">>, <<"result">> := <<"ok">>, <<"file">> := File1} = Scheduled,
    wait_until(fun() -> {200, _, #{<<"runs">> := [#{<<"state">> := S} | _]}} = api(GW, get, "runs", ?ADMIN), S =/= <<"running">> end),
    {200, _, #{<<"runs">> := [Run1]}} = api(GW, get, "runs", ?VIEWER),
    #{<<"id">> := Id1, <<"kind">> := <<"backup">>, <<"trigger">> := <<"scheduled">>, <<"state">> := <<"ok">>,
      <<"steps">> := Steps1, <<"result">> := Result1} = Run1,
    ?assertEqual(Scheduled, Result1),
    ?assert(has_step(Steps1, "export: started"), Steps1),
    ?assert(has_step(Steps1, "verify: done in "), Steps1),
    {200, _, Run1} = api(GW, get, "runs/" ++ binary_to_list(Id1), ?ADMIN),
    %% typed on a shell: trigger manual, newest first
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    #{<<"last_run">> := Typed = #{<<"file">> := File2}} = json(ctl(["backup_status", "--json"])),
    wait_until(fun() -> {200, _, #{<<"runs">> := R}} = api(GW, get, "runs", ?ADMIN),
                        [S || #{<<"state">> := S} <- R, S =/= <<"running">>] =:= [<<"ok">>, <<"ok">>] end),
    {200, _, #{<<"runs">> := [Run2, Run1Again]}} = api(GW, get, "runs", ?ADMIN),
    ?assertEqual(Run1, Run1Again),
    ?assertMatch(#{<<"trigger">> := <<"manual">>, <<"state">> := <<"ok">>, <<"result">> := Typed}, Run2),
    ?assert(has_step(maps:get(<<"steps">>, Run2), "export: started")),
    ?assertNotEqual(File1, File2),
    %% a backup started over the API is listed once, as the API's
    {202, _, #{<<"poll">> := Poll}} = api(GW, post, "backups", ?ADMIN, #{}),
    #{<<"state">> := <<"ok">>} = lists:last(poll(GW, binary_to_list(Poll), [])),
    {200, _, #{<<"runs">> := Runs}} = api(GW, get, "runs", ?ADMIN),
    ?assertEqual([<<"api">>, <<"manual">>, <<"scheduled">>], [T || #{<<"trigger">> := T} <- Runs]).

%% The scheduler killed while the run it started for the API goes on: the run is failed with why,
%% not left running; the API answers on.
scheduler_killed_mid_run_fails_the_run(Config) ->
    GW = ?config(gw, Config),
    ["backup_io_limit = \"1MB/s\""] = ctl(["backup_io_limit", "1MB/s"]),
    ok = emqx_mgmt_data_backup:set_mode({big, 3000000}),
    {202, _, #{<<"poll">> := Poll}} = api(GW, post, "backups", ?ADMIN, #{}),
    wait_until(fun() -> {200, _, #{<<"steps">> := S}} = api(GW, get, binary_to_list(Poll), ?ADMIN), has_step(S, "verify: reading ") end),
    exit(whereis(emqx_guard_scheduler), kill),
    #{<<"state">> := <<"failed">>, <<"error">> := Error} = lists:last(poll(GW, binary_to_list(Poll), [])),
    ?assertMatch({0, _}, binary:match(Error, <<"the job stopped before its end: killed">>)),
    {200, _, _} = api(GW, get, "status", ?ADMIN).

%% `POST backups/<name>/verify' reads it in full as `guard backup_verify <name>' does; a name that
%% is not a backup there (or a path) is 404.
verify_one_backup(Config) ->
    GW = ?config(gw, Config),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    [Name] = names(),
    {202, _, #{<<"poll">> := Poll}} = api(GW, post, "backups/" ++ Name ++ "/verify", ?ADMIN, #{}),
    #{<<"state">> := <<"ok">>, <<"target">> := BName, <<"steps">> := Steps,
      <<"result">> := #{<<"results">> := [#{<<"name">> := BName, <<"verified">> := true, <<"error">> := null}]}} =
        lists:last(poll(GW, binary_to_list(Poll), [])),
    ?assertEqual(list_to_binary(Name), BName),
    ?assert(has_step(Steps, "verify: ")),
    %% a damaged one: its verdict, the verifier's line
    Path = filename:join(emqx_guard_emqx:backup_dir(), Name),
    {ok, Bin} = file:read_file(Path),
    ok = file:write_file(Path, binary:part(Bin, 0, byte_size(Bin) div 2)),
    {202, _, #{<<"poll">> := Poll2}} = api(GW, post, "backups/" ++ Name ++ "/verify", ?ADMIN, #{}),
    #{<<"state">> := <<"failed">>, <<"result">> := #{<<"results">> := [#{<<"verified">> := false, <<"error">> := Err}]}} =
        lists:last(poll(GW, binary_to_list(Poll2), [])),
    [CliLine] = [L || L = "  " ++ _ <- ctl(["backup_verify", Name]), string:find(L, "NOT VERIFIED") =/= nomatch],
    ?assertNotEqual(nomatch, string:find(CliLine, binary_to_list(Err))),
    {404, _, #{<<"code">> := <<"NOT_FOUND">>, <<"message">> := <<"no backup named emqx-export-2000-01-01-00-00-00.000.tar.gz", _/binary>>}} =
        api(GW, post, "backups/emqx-export-2000-01-01-00-00-00.000.tar.gz/verify", ?ADMIN, #{}),
    %% percent-decoded by the gateway: still one segment, still not a backup
    {404, _, #{<<"code">> := <<"NOT_FOUND">>}} = api(GW, post, "backups/..%2F..%2Fetc%2Fpasswd/verify", ?ADMIN, #{}).

%% With an off-site destination (a real S3 server, s3s-fs): `GET backups?remote=true' is
%% `backup_list --remote --json', and `GET status' carries the off-site part as the command's.
offsite_backups_listed(Config) ->
    GW = ?config(gw, Config),
    S3 = emqx_guard_s3_helper:start(?config(data_dir, Config)),
    try
        [_ | _] = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S3)]),
        ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
        [Name] = names(),
        wait_until(fun() -> emqx_guard_s3_helper:objects(S3) =:= [Name] end),
        {200, _, Remote} = api(GW, get, "backups?remote=true", ?ADMIN),
        ?assertEqual(json(ctl(["backup_list", "--remote", "--json"])), Remote),
        #{<<"backups">> := [#{<<"export_name">> := BName, <<"encrypted">> := false}]} = Remote,
        ?assertEqual(list_to_binary(Name), BName),
        wait_until(fun() -> {200, _, #{<<"offsite">> := O}} = api(GW, get, "status", ?ADMIN),
                            maps:get(<<"newest_upload">>, O) =/= null end),
        {200, _, #{<<"offsite">> := Offsite}} = api(GW, get, "status", ?ADMIN),
        ?assertEqual(maps:get(<<"offsite">>, json(ctl(["backup_status", "--json"]))), Offsite),
        %% off-site retention's plan: the rule that keeps each, as `backup_prune --dry-run' says it
        {200, _, #{<<"remote_keep_policy">> := <<"last=5">>, <<"retention_paused">> := null,
                   <<"backups">> := [#{<<"export_name">> := BName, <<"keep">> := true, <<"why">> := Rule, <<"pinned">> := false}]}} =
            api(GW, get, "backups?remote=true&why=true", ?ADMIN),
        ?assertEqual(Rule, offsite_why(Name)),
        %% pinned: the column says so, and so does the rule
        [_ | _] = ctl(["backup_pin", Name]),
        {200, _, #{<<"backups">> := [#{<<"pinned">> := true, <<"keep">> := true, <<"why">> := PinRule}]}} =
            api(GW, get, "backups?remote=true&why=true", ?ADMIN),
        ?assertEqual(PinRule, offsite_why(Name)),
        ?assertMatch({_, _}, binary:match(PinRule, <<"pinned">>)),
        %% the bucket gone: the command's error line, answered within the gateway's time
        ok = emqx_guard_s3_helper:stop(S3),
        {503, _, #{<<"message">> := Down}} = api(GW, get, "backups?remote=true", ?ADMIN),
        #{<<"error">> := CliDown} = json(ctl(["backup_list", "--remote", "--json"])),
        %% the same line but for the time the client's retries took
        [Same, _] = binary:split(Down, <<" in ">>),
        ?assertMatch({0, _}, binary:match(CliDown, Same)),
        ?assertMatch({_, _}, binary:match(Same, <<"cannot connect">>))
    after
        emqx_guard_s3_helper:stop(S3)
    end.

%% `POST backups/<name>/restore': the dry run's report (`guard backup_restore <name> --dry-run',
%% the same `emqx_guard_restore:restore/2'), nothing changed; then for real: a safety backup
%% first, EMQX's import, the outcome in `backup_status'.
restore_dry_run_then_restore(Config) ->
    GW = ?config(gw, Config),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    [Name] = names(),
    BName = list_to_binary(Name),
    {202, _, #{<<"poll">> := P1, <<"run">> := #{<<"kind">> := <<"restore">>, <<"dry_run">> := true}}} =
        api(GW, post, "backups/" ++ Name ++ "/restore", ?ADMIN, #{<<"dry_run">> => true}),
    #{<<"state">> := <<"ok">>, <<"target">> := BName, <<"steps">> := Steps, <<"result">> := Report} =
        lists:last(poll(GW, binary_to_list(P1), [])),
    ?assertMatch(#{<<"result">> := <<"dry_run">>, <<"preflight">> := #{}}, Report),
    ?assert(has_step(Steps, "preflight: checking " ++ Name), Steps),
    %% the command's own words: its steps and what it found
    Cli = ctl(["backup_restore", Name, "--dry-run"]),
    [?assert(lists:member(binary_to_list(L), Cli), {L, Cli}) || #{<<"line">> := L = <<"preflight: ", _/binary>>} <- Steps],
    ?assertMatch([_, _], [L || #{<<"line">> := L = <<"preflight: ", _/binary>>} <- Steps]),
    #{<<"facts">> := [_ | _] = Facts} = Report,
    [?assert(lists:member(binary_to_list(L), Cli), {L, Cli}) || L <- Facts],
    {ok, Direct} = emqx_guard_restore:restore(BName, #{dry_run => true}),
    ?assertEqual(json_roundtrip(maps:get(<<"preflight">>, Direct)), maps:get(<<"preflight">>, Report)),
    ?assertEqual([Name], names()),
    %% without a body: a dry run too
    {202, _, #{<<"run">> := #{<<"dry_run">> := true}, <<"poll">> := P0}} =
        api(GW, post, "backups/" ++ Name ++ "/restore", ?ADMIN, #{}),
    #{<<"state">> := <<"ok">>} = lists:last(poll(GW, binary_to_list(P0), [])),
    {202, _, #{<<"poll">> := P2}} = api(GW, post, "backups/" ++ Name ++ "/restore", ?ADMIN, #{<<"dry_run">> => false}),
    #{<<"state">> := <<"ok">>, <<"result">> := #{<<"safety">> := #{<<"file">> := Safety}}, <<"steps">> := Steps2} =
        lists:last(poll(GW, binary_to_list(P2), [])),
    ?assert(has_step(Steps2, "safety: "), Steps2),
    ?assertEqual(lists:sort([Name, binary_to_list(Safety)]), names()),
    {200, _, #{<<"last_restore">> := #{<<"result">> := <<"ok">>, <<"file">> := BName}}} = api(GW, get, "status", ?ADMIN).

%% `GET settings' shows every key (secrets hidden); `PUT settings' validates as the command line
%% does: a bad cron is 400 with the command's own line and nothing changes; a good one is applied
%% (the CLI shows it); a hidden secret sent back unchanged stays as it was.
settings_read_and_changed_with_the_cli_rules(Config) ->
    GW = ?config(gw, Config),
    {200, _, #{<<"keys">> := Keys, <<"settings">> := S0}} = api(GW, get, "settings", ?ADMIN),
    ?assert(lists:member(<<"backup_cron">>, Keys)),
    ?assertEqual(<<"0 12 * * 0">>, maps:get(<<"backup_cron">>, S0)),
    ["Error: " ++ CliError] = ctl(["backup_cron", "61 * * * *"]),
    {400, _, #{<<"code">> := <<"BAD_REQUEST">>, <<"message">> := Msg}} =
        api(GW, put, "settings", ?ADMIN, #{<<"backup_cron">> => <<"61 * * * *">>}),
    ?assertEqual(list_to_binary(CliError), Msg),
    %% the page's check as a field is left: the same line, nothing changed; a good value passes
    {400, _, #{<<"message">> := Msg}} = api(GW, post, "settings/check", ?ADMIN, #{<<"backup_cron">> => <<"61 * * * *">>}),
    {200, _, #{<<"valid">> := true}} = api(GW, post, "settings/check", ?VIEWER, #{<<"backup_cron">> => <<"5 4 * * *">>}),
    %% a good key with a bad one: nothing changes
    {400, _, _} = api(GW, put, "settings", ?ADMIN, #{<<"backup_keep">> => <<"last=9">>, <<"backup_timezone">> => <<"Mars/Base">>}),
    {400, _, #{<<"message">> := <<"unknown setting no_such_key">>}} = api(GW, put, "settings", ?ADMIN, #{<<"no_such_key">> => 1}),
    ?assertEqual(["backup_cron = \"0 12 * * 0\""], lists:sublist(ctl(["backup_cron"]), 1)),
    {200, _, #{<<"settings">> := S1}} = api(GW, get, "settings", ?ADMIN),
    ?assertEqual(S0, S1),
    {200, _, #{<<"settings">> := S2, <<"warnings">> := []}} =
        api(GW, put, "settings", ?ADMIN, #{<<"backup_cron">> => <<"30 3 * * *">>, <<"backup_keep">> => <<"last=3 daily=7">>}),
    ?assertMatch(#{<<"backup_cron">> := <<"30 3 * * *">>, <<"backup_keep">> := <<"last=3 daily=7">>}, S2),
    ?assertEqual(["backup_cron = \"30 3 * * *\""], lists:sublist(ctl(["backup_cron"]), 1)),
    %% a secret: hidden in GET; its hidden form sent back changes nothing
    [_ | _] = ctl(["notify_smtp", "server=127.0.0.1", "user=ops", "password=s3cr3t-pw", "tls=none", "from=g@example.com"]),
    {200, _, #{<<"settings">> := #{<<"notify_smtp_password">> := Hidden} = S3}} = api(GW, get, "settings", ?ADMIN),
    ?assertNotEqual(<<"s3cr3t-pw">>, Hidden),
    ?assertEqual(nomatch, binary:match(emqx_guard_json:encode(S3), <<"s3cr3t-pw">>)),
    {200, _, _} = api(GW, put, "settings", ?ADMIN, S3#{<<"backup_cron">> => <<"0 4 * * *">>}),
    ?assertEqual(<<"s3cr3t-pw">>, maps:get(notify_smtp_password, emqx_guard_settings:get())),
    ?assertEqual(<<"0 4 * * *">>, maps:get(backup_cron, emqx_guard_settings:get())).

%% `POST notify/test' sends a test on every channel (here a webhook to a real receiver) in the
%% background; `GET notify/test' shows what the service answered.
notify_test_then_its_result(Config) ->
    GW = ?config(gw, Config),
    {404, _, #{<<"code">> := <<"NOT_FOUND">>}} = api(GW, get, "notify/test", ?ADMIN),
    {HP, HookPort, HookOut} = emqx_guard_receivers:start_chat(?config(priv_dir, Config), []),
    try
        Url = "http://127.0.0.1:" ++ integer_to_list(HookPort) ++ "/hook/api-test",
        [_] = ctl(["notify_webhook", Url]),
        {202, _, #{<<"id">> := Id}} = api(GW, post, "notify/test", ?ADMIN, #{}),
        wait_until(fun() -> {200, _, #{<<"state">> := S}} = api(GW, get, "notify/test", ?ADMIN), S =/= <<"running">> end),
        {200, _, #{<<"id">> := Id, <<"state">> := <<"ok">>, <<"result">> := #{<<"results">> := [R]}}} =
            api(GW, get, "notify/test", ?ADMIN),
        ?assertMatch(#{<<"channel">> := <<"webhook">>, <<"ok">> := true, <<"error">> := null}, R),
        ?assertEqual(1, emqx_guard_receivers:count(HookOut))
    after
        try port_close(HP) catch error:badarg -> ok end
    end.

%% A namespaced caller (even its administrator) gets 403 and nothing else, on every path.
namespaced_caller_gets_403_for_everything(Config) ->
    GW = ?config(gw, Config),
    lists:foreach(
        fun({Method, Path}) ->
            {403, _, #{<<"code">> := <<"FORBIDDEN">>, <<"message">> := M} = Body} = api(GW, Method, Path, ?NS, #{}),
            ?assertEqual([<<"code">>, <<"message">>], lists:sort(maps:keys(Body))),
            ?assertNotEqual(nomatch, binary:match(M, <<"global namespace">>))
        end,
        [{get, "ui"}, {get, "status"}, {get, "backups"}, {get, "backups?remote=true"}, {post, "backups"}, {get, "settings"},
         {put, "settings"}, {get, "runs"}, {post, "notify/test"}, {get, "no/such/path"}]
    ),
    ?assertEqual([], names()).

%% A viewer sees everything and changes nothing: every write is 403.
viewer_reads_but_cannot_change(Config) ->
    GW = ?config(gw, Config),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    [Name] = names(),
    {200, _, _} = api(GW, get, "status", ?VIEWER),
    {200, _, #{<<"backups">> := [_]}} = api(GW, get, "backups", ?VIEWER),
    {200, _, _} = api(GW, get, "settings", ?VIEWER),
    lists:foreach(
        fun({Method, Path, Body}) ->
            {403, _, #{<<"code">> := <<"FORBIDDEN">>, <<"message">> := M}} = api(GW, Method, Path, ?VIEWER, Body),
            ?assertNotEqual(nomatch, binary:match(M, <<"administrator">>))
        end,
        [{post, "backups", #{}}, {post, "backups/" ++ Name ++ "/verify", #{}},
         {post, "backups/" ++ Name ++ "/restore", #{<<"dry_run">> => true}},
         {put, "settings", #{<<"backup_cron">> => <<"0 1 * * *">>}}, {post, "notify/test", #{}}]
    ),
    ?assertEqual([Name], names()),
    ?assertEqual(<<"0 12 * * 0">>, maps:get(backup_cron, emqx_guard_settings:get())),
    %% the one run: the backup typed on the shell, none started by the viewer
    {200, _, #{<<"runs">> := [#{<<"trigger">> := <<"manual">>}]}} = api(GW, get, "runs", ?VIEWER).

%% Unknown paths are EMQX's 404; a body that is not what the call takes is 400 with one line;
%% no login is the gateway's 401 (the plugin is not called).
bad_input_and_unknown_paths(Config) ->
    GW = ?config(gw, Config),
    NotFound = #{<<"code">> => <<"NOT_FOUND">>, <<"message">> => <<"Plugin API Not Found">>},
    {404, _, NotFound} = api(GW, get, "no/such/path", ?ADMIN),
    {404, _, NotFound} = api(GW, delete, "backups", ?ADMIN),
    {404, _, NotFound} = api(GW, get, "status/more", ?ADMIN),
    {404, _, #{<<"message">> := <<"no such run: nope">>}} = api(GW, get, "runs/nope", ?ADMIN),
    {400, _, #{<<"code">> := <<"BAD_REQUEST">>}} = api(GW, get, "backups?remote=maybe", ?ADMIN),
    {400, _, #{<<"message">> := <<"the body must be a JSON object of settings", _/binary>>}} =
        api(GW, put, "settings", ?ADMIN, [1, 2]),
    {400, _, _} = api(GW, put, "settings", ?ADMIN, #{}),
    ["Backup done in " ++ _ | _] = result(ctl(["backup_now"])),
    [Name] = names(),
    {400, _, #{<<"message">> := <<"the body must be {\"dry_run\": true}", _/binary>>}} =
        api(GW, post, "backups/" ++ Name ++ "/restore", ?ADMIN, #{<<"dry_run">> => <<"yes">>}),
    {400, _, #{<<"message">> := <<"invalid json">>}} = raw(GW, put, "settings", ?ADMIN, <<"{not json">>),
    Seen = length(emqx_guard_gateway_standin:requests(GW)),
    {401, _, _} = api(GW, get, "status", undefined),
    {401, _, _} = api(GW, get, "status", <<"forged">>),
    ?assertEqual(Seen, length(emqx_guard_gateway_standin:requests(GW))),
    %% what the plugin saw: no credentials, the path decoded
    [{_, _, #{headers := Hs}, #{namespace := global}} | _] = emqx_guard_gateway_standin:requests(GW),
    ?assertNot(maps:is_key(<<"authorization">>, Hs) orelse maps:is_key(<<"cookie">>, Hs)).

%% `GET ui' is the page: HTML from priv/, reached by cookie as the dashboard's iframe does, with
%% only relative API paths; no answer of the plugin carried a header the 6.3 allow-list drops.
page_is_served_with_allowed_headers_only(Config) ->
    GW = ?config(gw, Config),
    {ok, {{_, 200, _}, Headers, Html}} = httpc:request(get, {url(GW, "ui"), [{"cookie", "emqx_auth=" ++ binary_to_list(?ADMIN)}]},
                                                        [], [{body_format, binary}]),
    ?assertEqual("text/html; charset=utf-8", proplists:get_value("content-type", Headers)),
    ?assertMatch({_, _}, binary:match(Html, <<"Back up now">>)),
    %% relative paths only: no absolute API path, no other host, no CDN
    ?assertEqual(nomatch, binary:match(Html, [<<"/api/v5">>, <<"http://">>, <<"https://">>, <<"//cdn">>])),
    {200, _, _} = api(GW, get, "status", ?ADMIN),
    {200, _, _} = api(GW, get, "settings", ?ADMIN),
    {404, _, _} = api(GW, get, "nothing", ?ADMIN),
    ?assertEqual([], emqx_guard_gateway_standin:dropped_headers(GW)).

%%--------------------------------------------------------------------

%% What `backup_prune --dry-run' says of Name's object in its off-site part (after the line
%% `Off-site retention ...').
offsite_why(Name) ->
    Offsite = lists:dropwhile(fun(L) -> not lists:prefix("Off-site retention", L) end, ctl(["backup_prune", "--dry-run"])),
    [Line] = [L || L <- tl(Offsite), string:find(L, Name) =/= nomatch],
    list_to_binary(lists:last(string:split(Line, "  ", trailing))).

url(GW, Path) ->
    "http://127.0.0.1:" ++ integer_to_list(emqx_guard_gateway_standin:port(GW)) ++ "/api/v5/plugin_api/emqx_guard/" ++ Path.

api(GW, Method, Path, Token) ->
    api(GW, Method, Path, Token, #{}).

api(GW, Method, Path, Token, Body) when Method =:= get; Method =:= delete ->
    _ = Body,
    decode(httpc:request(Method, {url(GW, Path), auth(Token)}, [{timeout, 15000}], [{body_format, binary}]));
api(GW, Method, Path, Token, Body) ->
    raw(GW, Method, Path, Token, emqx_guard_json:encode(Body)).

raw(GW, Method, Path, Token, Bin) ->
    decode(httpc:request(Method, {url(GW, Path), auth(Token), "application/json", Bin}, [{timeout, 15000}],
                         [{body_format, binary}])).

auth(undefined) -> [];
auth(Token) -> [{"authorization", "Bearer " ++ binary_to_list(Token)}].

decode({ok, {{_, Status, _}, Headers, Body}}) ->
    Decoded =
        case emqx_guard_json:decode(Body) of
            {ok, Term} -> Term;
            error -> Body
        end,
    {Status, Headers, Decoded}.

%% GET Path until the job is no longer running (every 200 ms, at most a minute); every answer.
poll(GW, Path, Acc) when length(Acc) < 300 ->
    {200, _, Doc} = api(GW, get, Path, ?ADMIN),
    case Doc of
        #{<<"state">> := <<"running">>} ->
            timer:sleep(200),
            poll(GW, Path, [Doc | Acc]);
        _ ->
            lists:reverse([Doc | Acc])
    end.

has_step(Steps, Prefix) ->
    lists:any(fun(#{<<"line">> := L}) -> lists:prefix(Prefix, binary_to_list(L)) end, Steps).

names() ->
    lists:sort([N || N <- filelib:wildcard("emqx-export-*.tar.gz", emqx_guard_emqx:backup_dir())]).

json_roundtrip(Term) ->
    {ok, Back} = emqx_guard_json:decode(emqx_guard_json:encode(Term)),
    Back.

json(Lines) ->
    {ok, Doc} = emqx_guard_json:decode(iolist_to_binary(lists:join("\n", Lines))),
    Doc.
