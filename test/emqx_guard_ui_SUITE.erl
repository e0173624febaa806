%% @doc The plugin's page (`priv/ui.html', issue 25) in a real browser: the stand-in of EMQX 6.3's
%% plugin API gateway (`emqx_guard_gateway_standin') served on 127.0.0.1 with its dashboard-like
%% page that shows `/ui' in an iframe, and headless Chromium (Debian's `chromium' and
%% `chromium-driver', `make test-deps') driven with Selenium by
%% `emqx_guard_ui_SUITE_data/ui_browser.py': it logs in by cookie, sees the health check's verdict
%% and the runs the scheduler made, sees the backups, clicks "Back up now" and sees the run's steps
%% and the new backup, runs a restore dry run and reads its report
%% (where `emqx_guard_restore' exists), enters a bad cron and sees the error, and looks at the
%% dark theme. The screenshots stay with this suite's logs (`priv_dir'); the README shows `readme.png', the
%% page after "Back up now" with the temporary data directory shown as /opt/emqx/data.
%% No skip: a machine without the browser fails here (CI installs it).
-module(emqx_guard_ui_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([operator_uses_the_page/1]).

-import(emqx_guard_ct_helper, [fake_opts/1, start_app/1, set_now/1, ctl/1, result/1, next_timer/1, deliver/1, wait_idle/0]).

-define(TOKEN, <<"browser-admin-token">>).

all() -> [operator_uses_the_page].

suite() -> [{timetrap, {minutes, 3}}].

init_per_suite(Config) ->
    emqx_guard_ct_helper:init_suite(Config).

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

%% The off-site table needs a real S3 server (s3s-fs): without it the case fails, as every suite's
%% off-site cases do, unless EMQX_GUARD_SKIP_S3=1 says to go on without the off-site part.
init_per_testcase(TC, Config) ->
    case {emqx_guard_s3_helper:binary(), os:getenv("EMQX_GUARD_SKIP_S3")} of
        {false, "1"} -> start_case(TC, [{offsite, false} | Config]);
        {false, _} -> {fail, "s3s-fs of the off-site tests is not installed, run make test-deps"};
        _ -> start_case(TC, [{offsite, true} | Config])
    end.

start_case(TC, Config) ->
    %% init_case/2 gives data_dir to EMQX's data directory: keep the suite's own
    Script = filename:join(?config(data_dir, Config), "ui_browser.py"),
    Config1 = [{script, Script} | emqx_guard_ct_helper:init_case(TC, Config)],
    set_now({{2026, 11, 25}, {10, 0, 0}}),
    start_app(fake_opts(#{})),
    {ok, GW} = emqx_guard_gateway_standin:start(),
    ok = emqx_guard_gateway_standin:add_token(GW, ?TOKEN, #{
        auth_type => jwt_token, source => <<"admin">>, namespace => global,
        actor => #{actor => <<"admin">>, role => <<"administrator">>, namespace => global}
    }),
    S3 = [emqx_guard_s3_helper:start(?config(data_dir, Config1)) || ?config(offsite, Config)],
    [{gw, GW}, {s3, S3} | Config1].

end_per_testcase(_TC, Config) ->
    emqx_guard_gateway_standin:stop(?config(gw, Config)),
    [emqx_guard_s3_helper:stop(S3) || S3 <- ?config(s3, Config)],
    emqx_guard_ct_helper:end_case().

%% Before the browser comes: the schedule's first fire made a backup, then a backup typed on the
%% shell failed. The page shows the health check's verdict (not healthy, with its line) and both
%% runs with their triggers; after "Back up now" it is healthy again.
operator_uses_the_page(Config) ->
    GW = ?config(gw, Config),
    S3 = ?config(s3, Config),
    [[_ | _] = ctl(["backup_remote" | emqx_guard_s3_helper:settings_args(S)]) || S <- S3],
    Timer = newest_wake(),
    set_now({{2026, 11, 29}, {12, 0, 0}}),
    deliver(Timer),
    wait_idle(),
    [First] = names(),
    %% off-site: uploaded, and pinned (never deleted by retention, anywhere)
    [emqx_guard_ct_helper:wait_until(fun() -> emqx_guard_s3_helper:objects(S) =:= [First] end) || S <- S3],
    [_ | _] = ctl(["backup_pin", First]),
    OffsiteWhy = [offsite_why(First) || _ <- S3],
    ok = emqx_mgmt_data_backup:set_mode({error, disk_gone}),
    ["Error: " ++ _ | _] = result(ctl(["backup_now"])),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    {error, HealthLine} = emqx_guard_app:on_health_check(#{}),
    Shots = ?config(priv_dir, Config),
    Restore = [" --restore" || code:which(emqx_guard_restore) =/= non_existing] ++ [" --offsite " ++ First || _ <- S3] ++
              [" --data-dir ", emqx:data_dir()],
    Script = ?config(script, Config),
    Cmd = lists:flatten(["python3 ", Script, " --base http://127.0.0.1:", integer_to_list(emqx_guard_gateway_standin:port(GW)),
                         " --token ", binary_to_list(?TOKEN), " --shots ", Shots, Restore]),
    {Status, Out} = run(Cmd),
    ct:pal("~ts", [Out]),
    ?assertEqual(0, Status, Out),
    ?assertNotEqual(nomatch, string:find(Out, "PASS")),
    %% the health check's own line, and the runs the scheduler made, as the browser saw them
    ?assertNotEqual(nomatch, string:find(Out, "health: not healthy: " ++ binary_to_list(HealthLine)), Out),
    ?assertNotEqual(nomatch, string:find(Out, "runs listed: scheduled ok, manual failed"), Out),
    ?assertNotEqual(nomatch, string:find(Out, "health after the backup: healthy"), Out),
    %% the off-site row as the page was loaded: pinned, and the rule that kept it then
    [?assertNotEqual(nomatch, string:find(Out, "off-site: " ++ First ++ " | pinned | " ++ binary_to_list(Why)), Out)
     || Why <- OffsiteWhy],
    %% what the browser did, as the node sees it: one more backup, the bad cron not stored
    [First, Second] = names(),
    ?assertNotEqual(nomatch, string:find(Out, "new backup: " ++ Second)),
    ?assertEqual(<<"0 12 * * 0">>, maps:get(backup_cron, emqx_guard_settings:get())),
    ?assertNotEqual(nomatch, string:find(Out, "inline error: ")),
    Pngs = [filename:join(Shots, F) || F <- ["01-overview.png", "02-backup-now.png", "04-bad-cron.png", "05-dark.png", "readme.png"]],
    lists:foreach(fun(F) -> {ok, <<137, "PNG", _/binary>>} = file:read_file(F) end, Pngs),
    ct:log("screenshots: ~ts", [lists:join(" ", [["<a href=\"", F, "\">", filename:basename(F), "</a>"] || F <- Pngs])]),
    %% no answer carried a header EMQX 6.3 drops
    ?assertEqual([], emqx_guard_gateway_standin:dropped_headers(GW)).

%%--------------------------------------------------------------------

%% What off-site retention's plan (`backup_prune --dry-run') says of Name's object.
offsite_why(Name) ->
    {ok, #{<<"backups">> := Remote}} = emqx_guard_report:remote_backups_why(5000),
    [Why] = [W || #{<<"export_name">> := E, <<"why">> := W} <- Remote, E =:= list_to_binary(Name)],
    Why.

%% The timer the scheduler armed last (a change of the settings arms it again).
newest_wake() ->
    _ = emqx_guard_scheduler:status(),
    newest_wake(next_timer(wake)).

newest_wake(Timer) ->
    receive
        {fake_timer, _, Delay, Pid, {emqx_guard_scheduler, wake, _} = Msg} -> newest_wake({Delay, Pid, Msg})
    after 0 ->
        Timer
    end.

names() ->
    lists:sort(filelib:wildcard("emqx-export-*.tar.gz", emqx_guard_emqx:backup_dir())).

%% The command's exit status and output (stdout and stderr).
run(Cmd) ->
    Port = open_port({spawn, Cmd}, [exit_status, stderr_to_stdout, binary, {line, 4096}]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, {_, Line}}} -> collect(Port, [Acc, Line, $\n]);
        {Port, {exit_status, S}} -> {S, unicode:characters_to_list(iolist_to_binary(Acc))}
    after 150000 ->
        {timeout, unicode:characters_to_list(iolist_to_binary(Acc))}
    end.
