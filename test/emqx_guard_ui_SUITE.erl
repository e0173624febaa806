%% @doc The plugin's page (`priv/ui.html', issue 25) in a real browser: the stand-in of EMQX 6.3's
%% plugin API gateway (`emqx_guard_gateway_standin') served on 127.0.0.1 with its dashboard-like
%% page that shows `/ui' in an iframe, and headless Chromium (Debian's `chromium' and
%% `chromium-driver', `make test-deps') driven with Selenium by
%% `emqx_guard_ui_SUITE_data/ui_browser.py': it logs in by cookie, sees the health check's verdict
%% and the runs the scheduler made, sees the backups, clicks "Back up now" and sees the run's steps
%% and the new backup, runs a restore dry run and reads its report
%% (where `emqx_guard_restore' exists), enters a bad cron and sees the error, and looks at the
%% dark theme. The screenshots stay with this suite's logs (`priv_dir'); the README shows one.
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

init_per_testcase(TC, Config) ->
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
    [{gw, GW} | Config1].

end_per_testcase(_TC, Config) ->
    emqx_guard_gateway_standin:stop(?config(gw, Config)),
    emqx_guard_ct_helper:end_case().

%% Before the browser comes: the schedule's first fire made a backup, then a backup typed on the
%% shell failed. The page shows the health check's verdict (not healthy, with its line) and both
%% runs with their triggers; after "Back up now" it is healthy again.
operator_uses_the_page(Config) ->
    GW = ?config(gw, Config),
    Timer = next_timer(wake),
    set_now({{2026, 11, 29}, {12, 0, 0}}),
    deliver(Timer),
    wait_idle(),
    [First] = names(),
    ok = emqx_mgmt_data_backup:set_mode({error, disk_gone}),
    ["Error: " ++ _ | _] = result(ctl(["backup_now"])),
    ok = emqx_mgmt_data_backup:set_mode(ok),
    {error, HealthLine} = emqx_guard_app:on_health_check(#{}),
    Shots = ?config(priv_dir, Config),
    Restore = [" --restore" || code:which(emqx_guard_restore) =/= non_existing],
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
    %% what the browser did, as the node sees it: one more backup, the bad cron not stored
    [First, Second] = names(),
    ?assertNotEqual(nomatch, string:find(Out, "new backup: " ++ Second)),
    ?assertEqual(<<"0 12 * * 0">>, maps:get(backup_cron, emqx_guard_settings:get())),
    ?assertNotEqual(nomatch, string:find(Out, "inline error: ")),
    Pngs = [filename:join(Shots, F) || F <- ["01-overview.png", "02-backup-now.png", "04-bad-cron.png", "05-dark.png"]],
    lists:foreach(fun(F) -> {ok, <<137, "PNG", _/binary>>} = file:read_file(F) end, Pngs),
    ct:log("screenshots: ~ts", [lists:join(" ", [["<a href=\"", F, "\">", filename:basename(F), "</a>"] || F <- Pngs])]),
    %% no answer carried a header EMQX 6.3 drops
    ?assertEqual([], emqx_guard_gateway_standin:dropped_headers(GW)).

%%--------------------------------------------------------------------

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
