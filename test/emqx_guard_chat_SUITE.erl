%% @doc The chat channels (Slack, Microsoft Teams, Feishu/Lark, DingTalk, WeCom) against
%% stand-ins of the services on 127.0.0.1: `emqx_guard_chat_SUITE_data/chat_receiver.py' checks
%% every request as the service's documentation specifies it (path, content type, JSON shape,
%% token or key, the signature recomputed from the secret, the timestamp within an hour),
%% answers as the service does (its success body, its documented errors, or scripted 429 with
%% Retry-After and 5xx answers) and records what it received. Each case checks what arrived
%% and what the operator sees.
-module(emqx_guard_chat_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([
    every_event_on_every_channel/1,
    slack_bot_token_and_its_errors/1,
    wrong_signature_refused_and_not_retried/1,
    retries_on_429_and_5xx_honouring_retry_after/1,
    long_messages_cut_to_each_service_limit/1,
    cli_settings_notify_test_and_redaction/1,
    every_channel_command_checked_whole/1
]).

-define(SETTINGS_KEY, {?MODULE, settings}).
-define(EXPORT, <<"emqx-export-2026-01-02-03-04-05.678.tar.gz">>).
-define(SLACK_HOOK, "/services/T0GUARD/B0GUARD/SlackHookSecret1").
-define(SLACK_TOKEN, "xoxb-SlackTokenSecret2").
-define(TEAMS_PATH, "/workflows/TeamsFlowSecret3/triggers/manual/paths/invoke?api-version=2016-06-01&sig=TeamsSigSecret4").
-define(FEISHU_PATH, "/open-apis/bot/v2/hook/FeishuHookSecret5").
-define(FEISHU_SECRET, "FeishuSignSecret6").
-define(DING_PATH, "/robot/send?access_token=DingTokenSecret7").
-define(DING_SECRET, "SECDingSignSecret8").
-define(WECOM_PATH, "/cgi-bin/webhook/send?key=WeComKeySecret9").
-define(SECRETS, [<<"SlackHookSecret1">>, <<"SlackTokenSecret2">>, <<"TeamsFlowSecret3">>, <<"TeamsSigSecret4">>,
    <<"FeishuHookSecret5">>, <<"FeishuSignSecret6">>, <<"DingTokenSecret7">>, <<"DingSignSecret8">>,
    <<"WeComKeySecret9">>]).
-define(CHAT, [slack, teams, feishu, dingtalk, wecom]).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [
        every_event_on_every_channel,
        slack_bot_token_and_its_errors,
        wrong_signature_refused_and_not_retried,
        retries_on_429_and_5xx_honouring_retry_after,
        long_messages_cut_to_each_service_limit,
        cli_settings_notify_test_and_redaction,
        every_channel_command_checked_whole
    ].

%%--------------------------------------------------------------------------------------------
%% Setup
%%--------------------------------------------------------------------------------------------

init_per_suite(Config) ->
    ?assertNotEqual(false, os:find_executable("python3"), "python3 is needed for the chat service stand-ins"),
    ?assertMatch({ok, _}, emqx_guard_nif:list_backups(list_to_binary(?config(priv_dir, Config)))),
    {ok, _} = application:ensure_all_started(inets),
    {ok, _} = application:ensure_all_started(ssl),
    Script = emqx_guard_receivers:chat_script(),
    ?assert(filelib:is_regular(Script), Script),
    Config.

end_per_suite(_Config) ->
    emqx:reset(),
    ok.

init_per_testcase(TC, Config0) ->
    Config = emqx_guard_ct_helper:init_case(TC, Config0),
    Backup = filename:join([emqx_guard_emqx:backup_dir(), ?EXPORT]),
    ok = filelib:ensure_dir(Backup),
    ok = file:write_file(Backup, binary:copy(<<"x">>, 1536)),
    [{backup_path, unicode:characters_to_binary(Backup)} | Config].

end_per_testcase(_TC, _Config) ->
    case whereis(emqx_guard_notify) of
        undefined -> ok;
        _ -> try gen_server:stop(emqx_guard_notify) catch exit:_ -> ok end
    end,
    emqx_guard_ct_helper:end_case(),
    application:unset_env(emqx_guard, notify),
    _ = persistent_term:erase(?SETTINGS_KEY),
    ok.

%% Starts chat_receiver.py (`emqx_guard_receivers'); returns {PortHandle, TcpPort, OutDir}.
start_receiver(Config, Args) ->
    emqx_guard_receivers:start_chat(?config(data_dir, Config), [
        "--slack-token", ?SLACK_TOKEN, "--slack-channel", "C0GUARD",
        "--dingtalk-token", "DingTokenSecret7", "--wecom-key", "WeComKeySecret9" | Args
    ]).

signed() ->
    ["--feishu-secret", ?FEISHU_SECRET, "--dingtalk-secret", ?DING_SECRET].

url(Port, Path) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), Path]).

chat_settings(Port) ->
    maps:merge(emqx_guard_settings:defaults(), #{
        backup_cron => <<"0 12 * * 0">>,
        backup_timezone => <<"Europe/Berlin">>,
        notify_on_success => true,
        notify_slack_url => url(Port, ?SLACK_HOOK),
        notify_teams_url => url(Port, ?TEAMS_PATH),
        notify_feishu_url => url(Port, ?FEISHU_PATH),
        notify_feishu_secret => <<?FEISHU_SECRET>>,
        notify_dingtalk_url => url(Port, ?DING_PATH),
        notify_dingtalk_secret => <<?DING_SECRET>>,
        notify_dingtalk_at_mobiles => [<<"13800000000">>],
        notify_wecom_url => url(Port, ?WECOM_PATH)
    }).

start_notify(Settings, Opts) ->
    persistent_term:put(?SETTINGS_KEY, Settings),
    {ok, Pid} = emqx_guard_notify:start_link(maps:merge(
        #{settings => fun() -> persistent_term:get(?SETTINGS_KEY) end, backoff_ms => [20, 40, 80], timeout_ms => 5000},
        Opts
    )),
    unlink(Pid),
    Pid.

ok_outcome(Config) ->
    #{
        result => ok,
        trigger => scheduled,
        started_at => 1767319445678,
        duration_ms => 2500,
        node => node(),
        file => ?EXPORT,
        path => ?config(backup_path, Config),
        size => 1536,
        sha256 => <<"4b2f7e0d6a1c9e8f00112233445566778899aabbccddeeff0011223344556677">>,
        pruned => [],
        warnings => []
    }.

failed_outcome() ->
    #{result => failed, trigger => manual, started_at => 1767319445678, duration_ms => 900, node => node(),
        error => <<"export failed: disk full (enospc)">>, pruned => [], warnings => []}.

%% Waits until every channel in Kinds finished a delivery of Event; returns the deliveries.
finals(Kinds, Event) ->
    emqx_guard_ct_helper:wait_until(fun() ->
        S = emqx_guard_notify:status(),
        lists:all(fun(K) ->
            case maps:get(K, S) of
                #{event := Event, state := St} -> St =:= sent orelse St =:= failed;
                _ -> false
            end
        end, Kinds)
    end),
    maps:with(Kinds, emqx_guard_notify:status()).

%% The requests the receiver recorded, in arrival order (waits for at least N).
records(Out, N) ->
    emqx_guard_ct_helper:wait_until(fun() -> length(filelib:wildcard(filename:join(Out, "*.json"))) >= N end),
    Files = filelib:wildcard(filename:join(Out, "*.json")),
    Sorted = lists:sort(fun(A, B) -> num(A) =< num(B) end, Files),
    [begin {ok, Bin} = file:read_file(F), {ok, R} = emqx_guard_json:decode(Bin), R end || F <- Sorted].

num(F) -> list_to_integer(filename:basename(F, ".json")).

of_service(Service, Records) ->
    [R || R = #{<<"service">> := S} <- Records, S =:= Service].

contains(Haystack, Needle) ->
    string:find(Haystack, Needle) =/= nomatch.

assert_has(Text, Wants) ->
    [?assert(contains(Text, W), {missing, W, Text}) || W <- Wants].

%%--------------------------------------------------------------------------------------------
%% Cases
%%--------------------------------------------------------------------------------------------

%% backup_ok, backup_failed, dead_man and test on all five services: each request is what the
%% service documents (the receiver's verdict), shows the facts, and is answered with success.
every_event_on_every_channel(Config) ->
    {P, Port, Out} = start_receiver(Config, signed()),
    start_notify(chat_settings(Port), #{}),
    Path = ?config(backup_path, Config),
    Node = atom_to_binary(node()),
    Events = [
        {backup_ok, ok_outcome(Config)},
        {backup_failed, failed_outcome()},
        {dead_man, #{time => 1767319445678, last_success => 1766714645678, deadline => 1767319400000}},
        {test, #{}}
    ],
    Answers = [
        begin
            ok = emqx_guard_notify:notify(Event, Facts),
            finals(?CHAT, Event)
        end
     || {Event, Facts} <- Events
    ],
    [
        ?assertMatch(#{state := sent, attempts := 1}, D, {K, D})
     || Finals <- Answers, {K, D} <- maps:to_list(Finals)
    ],
    #{slack := #{answer := SlackAnswer}, teams := #{answer := TeamsAnswer}, feishu := #{answer := FeishuAnswer},
        dingtalk := #{answer := DingAnswer}, wecom := #{answer := WeComAnswer}} = lists:last(Answers),
    ?assertEqual(<<"HTTP 200 OK: ok">>, SlackAnswer),
    ?assertEqual(<<"HTTP 202 Accepted">>, TeamsAnswer),
    ?assertEqual(<<"HTTP 200 OK: code 0: success">>, FeishuAnswer),
    ?assertEqual(<<"HTTP 200 OK: errcode 0: ok">>, DingAnswer),
    ?assertEqual(<<"HTTP 200 OK: errcode 0: ok">>, WeComAnswer),
    Records = records(Out, 20),
    ?assertEqual(20, length(Records)),
    [?assertMatch(#{<<"verdict">> := <<"ok">>}, R) || R <- Records],
    %% one request per event per service, in the order of the events
    [SlackOk, SlackFailed, SlackDead, SlackTest] = [maps:get(<<"text">>, J) || #{<<"json">> := J} <- of_service(<<"slack_webhook">>, Records)],
    assert_has(SlackOk, [<<"*emqx_guard: backup OK on ", Node/binary, ": ", ?EXPORT/binary, " (1.5 KiB)*">>,
        <<"*Time:* 2026-01-02 03:04:05 +01:00 (Europe/Berlin)">>, <<"*File:* ", Path/binary>>,
        <<"*Size:* 1.5 KiB (1536 bytes)">>, <<"```emqx_ctl data import ", Path/binary, "```">>]),
    assert_has(SlackFailed, [<<"backup FAILED on ", Node/binary, ": export failed: disk full (enospc)">>,
        <<"*Error:* export failed: disk full (enospc)">>, <<"*Trigger:* manual">>]),
    ?assertNot(contains(SlackFailed, <<"emqx_ctl data import">>)),
    assert_has(SlackDead, [<<"backup MISSING on ", Node/binary>>, <<"*Last success:* 2025-12-26 03:04:05 +01:00">>]),
    assert_has(SlackTest, [<<"test message from ", Node/binary>>]),
    %% Teams: one Adaptive Card; the title coloured by the event, the facts as a fact set
    [TeamsOk, TeamsFailed | _] = of_service(<<"teams">>, Records),
    #{<<"json">> := #{<<"attachments">> := [#{<<"content">> := #{<<"body">> := [Title, FactSet | Restore]}}]}} = TeamsOk,
    ?assertMatch(#{<<"color">> := <<"Good">>, <<"text">> := <<"emqx_guard: backup OK on ", _/binary>>}, Title),
    ?assert(lists:member(#{<<"title">> => <<"File">>, <<"value">> => Path}, maps:get(<<"facts">>, FactSet))),
    ?assertMatch([_, #{<<"text">> := <<"emqx_ctl data import ", _/binary>>, <<"fontType">> := <<"Monospace">>}], Restore),
    #{<<"json">> := #{<<"attachments">> := [#{<<"content">> := #{<<"body">> := [FTitle, FFacts]}}]}} = TeamsFailed,
    ?assertMatch(#{<<"color">> := <<"Attention">>}, FTitle),
    ?assert(lists:member(#{<<"title">> => <<"Error">>, <<"value">> => <<"export failed: disk full (enospc)">>},
        maps:get(<<"facts">>, FFacts))),
    %% Feishu: signed text
    [FeishuOk | _] = of_service(<<"feishu">>, Records),
    #{<<"json">> := #{<<"timestamp">> := _, <<"sign">> := _, <<"content">> := #{<<"text">> := FeishuText}}} = FeishuOk,
    assert_has(FeishuText, [<<"emqx_guard: backup OK on ">>, <<"Size: 1.5 KiB (1536 bytes)">>,
        <<"emqx_ctl data import ", Path/binary>>]),
    %% DingTalk: signed URL, markdown, the mobile mentioned
    [_, _, DingDead, _] = of_service(<<"dingtalk">>, Records),
    #{<<"query">> := #{<<"timestamp">> := [_], <<"sign">> := [_]},
        <<"json">> := #{<<"markdown">> := #{<<"title">> := DingTitle, <<"text">> := DingText}, <<"at">> := At}} = DingDead,
    ?assertMatch(<<"emqx_guard: backup MISSING on ", _/binary>>, DingTitle),
    assert_has(DingText, [<<"### emqx_guard: backup MISSING">>, <<"- **Expected by:** ">>, <<"@13800000000">>]),
    ?assertEqual(#{<<"atMobiles">> => [<<"13800000000">>], <<"isAtAll">> => false}, At),
    %% WeCom: markdown, a failure in the warning colour
    [_, WeComFailed, _, _] = of_service(<<"wecom">>, Records),
    #{<<"json">> := #{<<"markdown">> := #{<<"content">> := WeComText}}} = WeComFailed,
    assert_has(WeComText, [<<"**<font color=\"warning\">emqx_guard: backup FAILED">>, <<"> Error: export failed">>]),
    port_close(P).

%% Slack with a bot token: chat.postMessage with the token as Bearer; the answer's `ok'
%% decides; a refusal (`ok: false') is not tried again.
slack_bot_token_and_its_errors(Config) ->
    {P, Port, Out} = start_receiver(Config, []),
    Base = maps:merge(emqx_guard_settings:defaults(), #{
        backup_cron => <<"0 12 * * 0">>,
        notify_slack_token => <<?SLACK_TOKEN>>,
        notify_slack_channel => <<"C0GUARD">>
    }),
    ApiUrl = url(Port, "/api/chat.postMessage"),
    start_notify(Base, #{slack_api_url => ApiUrl, backoff_ms => [10, 10]}),
    ?assertEqual([{slack, {ok, <<"HTTP 200 OK: ok">>}}], emqx_guard_notify:send_test()),
    [R] = records(Out, 1),
    ?assertMatch(#{<<"service">> := <<"slack_api">>, <<"verdict">> := <<"ok">>,
        <<"json">> := #{<<"channel">> := <<"C0GUARD">>, <<"text">> := <<"*emqx_guard: test message from ", _/binary>>}}, R),
    persistent_term:put(?SETTINGS_KEY, Base#{notify_slack_channel => <<"C0WRONG">>}),
    ok = emqx_guard_notify:notify(backup_failed, failed_outcome()),
    #{slack := D} = finals([slack], backup_failed),
    ?assertMatch(#{state := failed, attempts := 1,
        error := <<"Slack refused the message: HTTP 200 OK: error channel_not_found">>}, D),
    ?assertEqual(2, length(records(Out, 2))),
    port_close(P).

%% A signing secret or key the service does not know: refused by the receiver (signature
%% recomputed there), shown with the service's code, and not tried again.
wrong_signature_refused_and_not_retried(Config) ->
    {P, Port, Out} = start_receiver(Config, signed()),
    Settings = (maps:with([backup_cron, backup_timezone] ++ emqx_guard_notify_config:keys(), chat_settings(Port)))#{
        notify_slack_url => <<>>,
        notify_teams_url => <<>>,
        notify_feishu_secret => <<"NotTheFeishuSecret">>,
        notify_dingtalk_secret => <<"SECNotTheDingTalkSecret">>,
        notify_wecom_url => url(Port, "/cgi-bin/webhook/send?key=NotTheKey")
    },
    start_notify(Settings, #{backoff_ms => [10, 10, 10]}),
    ok = emqx_guard_notify:notify(backup_failed, failed_outcome()),
    #{feishu := F, dingtalk := D, wecom := W} = finals([feishu, dingtalk, wecom], backup_failed),
    ?assertMatch(#{state := failed, attempts := 1}, F),
    ?assertMatch(#{state := failed, attempts := 1}, D),
    ?assertMatch(#{state := failed, attempts := 1}, W),
    ?assertEqual(<<"Feishu refused the message: HTTP 200 OK: code 19021: sign match fail or timestamp is not within "
        "one hour from current time">>, maps:get(error, F)),
    ?assertMatch(<<"DingTalk refused the message: HTTP 200 OK: errcode 310000: sign not match", _/binary>>, maps:get(error, D)),
    ?assertMatch(<<"WeCom refused the message: HTTP 200 OK: errcode 93000: invalid webhook url", _/binary>>, maps:get(error, W)),
    Records = records(Out, 3),
    ?assertEqual([<<"bad signature">>, <<"bad signature">>, <<"wrong key">>],
        lists:sort([V || #{<<"verdict">> := V} <- Records])),
    port_close(P).

%% 429 with Retry-After and 5xx answers are tried again (the wait the service asked for is
%% kept), until the service accepts.
retries_on_429_and_5xx_honouring_retry_after(Config) ->
    {P, Port, Out} = start_receiver(Config, signed() ++ ["--script", "slack_webhook=429/1,503", "--script", "teams=500",
        "--script", "dingtalk=502"]),
    start_notify(chat_settings(Port), #{backoff_ms => [10, 10, 10]}),
    ok = emqx_guard_notify:notify(backup_failed, failed_outcome()),
    #{slack := S, teams := T, dingtalk := D, wecom := W} = finals(?CHAT, backup_failed),
    ?assertMatch(#{state := sent, attempts := 3}, S),
    ?assertMatch(#{state := sent, attempts := 2}, T),
    ?assertMatch(#{state := sent, attempts := 2}, D),
    ?assertMatch(#{state := sent, attempts := 1}, W),
    [S1, S2, S3] = of_service(<<"slack_webhook">>, records(Out, 9)),
    ?assertEqual([429, 503, 200], [maps:get(<<"status">>, R) || R <- [S1, S2, S3]]),
    %% the second attempt waited for Retry-After (1 s), not for the 10 ms backoff
    ?assert(maps:get(<<"received_ms">>, S2) - maps:get(<<"received_ms">>, S1) >= 1000),
    ?assertEqual(maps:get(<<"json">>, S1), maps:get(<<"json">>, S3)),
    port_close(P).

%% A very long error: every service gets a request within its limits (the receiver refuses
%% larger ones), cut with a marker.
long_messages_cut_to_each_service_limit(Config) ->
    {P, Port, Out} = start_receiver(Config, signed()),
    start_notify(chat_settings(Port), #{}),
    Long = iolist_to_binary(lists:duplicate(3000, <<"dïsk \"full\" "/utf8>>)),
    ok = emqx_guard_notify:notify(backup_failed, (failed_outcome())#{error => Long}),
    Finals = finals(?CHAT, backup_failed),
    [?assertMatch(#{state := sent, attempts := 1}, D, K) || {K, D} <- maps:to_list(Finals)],
    Records = records(Out, 5),
    [?assertMatch(#{<<"verdict">> := <<"ok">>}, R) || R <- Records],
    [#{<<"json">> := #{<<"markdown">> := #{<<"content">> := WeCom}}}] = of_service(<<"wecom">>, Records),
    ?assert(byte_size(WeCom) =< 4096),
    ?assert(contains(WeCom, <<"(cut: too long for this channel)">>)),
    [#{<<"json">> := #{<<"text">> := Slack}}] = of_service(<<"slack_webhook">>, Records),
    ?assert(byte_size(Slack) =< 4000),
    [#{<<"json">> := Feishu}] = of_service(<<"feishu">>, Records),
    ?assert(byte_size(emqx_guard_json:encode(Feishu)) =< 20 * 1024),
    ?assert(contains(maps:get(<<"text">>, maps:get(<<"content">>, Feishu)), <<"(cut: too long for this channel)">>)),
    port_close(P).

%% Through the plugin's command line: each channel set with one command and shown redacted;
%% bad input is one Error line that changes nothing; `notify_test' prints one line per
%% channel with the service's answer; no secret in any output, log or sys:get_status.
cli_settings_notify_test_and_redaction(Config) ->
    {P, Port, _Out} = start_receiver(Config, signed()),
    application:set_env(emqx_guard, notify, #{backoff_ms => [], timeout_ms => 5000}),
    ok = emqx_guard_ct_helper:start_app(real),
    #{level := Level} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    {ok, Handler} = capture_logs(),
    Ctl = fun(Args) -> emqx_guard_ct_helper:ctl([unicode:characters_to_list(A) || A <- Args]) end,
    Shown = fun(_Path) -> unicode:characters_to_list(["\"http://127.0.0.1:", integer_to_list(Port), "/", 16#2026, "\""]) end,
    U = fun(Path) -> binary_to_list(url(Port, Path)) end,
    ?assertEqual(["notify_slack_url = " ++ Shown(?SLACK_HOOK), "notify_slack_token = \"\"", "notify_slack_channel = \"\""],
        Ctl(["notify_slack", "url=" ++ U(?SLACK_HOOK)])),
    ?assertEqual(["notify_teams_url = " ++ Shown(?TEAMS_PATH)], Ctl(["notify_teams", U(?TEAMS_PATH)])),
    ?assertEqual(["notify_feishu_url = " ++ Shown(?FEISHU_PATH), "notify_feishu_secret = \"******\""],
        Ctl(["notify_feishu", "url=" ++ U(?FEISHU_PATH), "secret=" ++ ?FEISHU_SECRET])),
    ?assertEqual(["notify_dingtalk_url = " ++ Shown(?DING_PATH), "notify_dingtalk_secret = \"******\"",
        "notify_dingtalk_at_mobiles = [\"13800000000\"]"],
        Ctl(["notify_dingtalk", "url=" ++ U(?DING_PATH), "secret=" ++ ?DING_SECRET, "at_mobiles=13800000000"])),
    ?assertEqual(["notify_wecom_url = " ++ Shown(?WECOM_PATH)], Ctl(["notify_wecom", "url=" ++ U(?WECOM_PATH)])),
    Before = Ctl(["notify"]),
    Bad = [
        {["notify_wecom", "url=http://hooks.example.com/cgi-bin/webhook/send?key=WeComKeySecret9"],
            "Error: http://hooks.example.com/… is plain http: use https, or list the host in notify_http_hosts"},
        {["notify_feishu", "colour=red"], "Error: unknown key \"colour\" (use url, secret)"},
        {["notify_dingtalk", "secret=SECDing\tSignSecret8"],
            "Error: notify_dingtalk_secret must not contain line breaks, tabs or other control characters"},
        {["notify_matrix", "url=https://matrix.example.com/x"],
            "Error: unknown channel \"matrix\" (use notify_smtp, notify_webhook, notify_slack, notify_teams, notify_feishu, notify_dingtalk, notify_wecom)"},
        {["notify_test", "matrix"],
            "Error: unknown channel \"matrix\" (use email, webhook, slack, teams, feishu, dingtalk, wecom)"},
        {["notify_slack", "token=xoxb-SlackTokenSecret2"], "Error: notify_slack_token needs notify_slack_channel (channel=C...)"}
    ],
    [?assertEqual([unicode:characters_to_list(Want)], Ctl(Args), Args) || {Args, Want} <- Bad],
    ?assertEqual(Before, Ctl(["notify"])),
    ?assertEqual(
        [
            "notify_test slack: sent; the server answered: HTTP 200 OK: ok",
            "notify_test teams: sent; the server answered: HTTP 202 Accepted",
            "notify_test feishu: sent; the server answered: HTTP 200 OK: code 0: success",
            "notify_test dingtalk: sent; the server answered: HTTP 200 OK: errcode 0: ok",
            "notify_test wecom: sent; the server answered: HTTP 200 OK: errcode 0: ok"
        ],
        Ctl(["notify_test"])
    ),
    ?assertEqual(["notify_test feishu: sent; the server answered: HTTP 200 OK: code 0: success"], Ctl(["notify_test", "lark"])),
    %% a refused key: the failure is logged with the target as scheme, host and port only
    _ = Ctl(["notify_wecom", "url=" ++ U("/cgi-bin/webhook/send?key=WeComKeySecret9-old")]),
    ok = emqx_guard_notify:notify(backup_failed, failed_outcome()),
    #{wecom := #{state := failed}} = finals(?CHAT, backup_failed),
    ?assertEqual(["notify_wecom_url = \"\""], Ctl(["notify_wecom", "off"])),
    ?assertEqual(["Error: notify_test wecom: not configured (guard notify_wecom)"], Ctl(["notify_test", "wecom"])),
    Printed = Ctl(["notify"]) ++ Ctl(["backup_status"]),
    ?assert(lists:member("notify_wecom = off", Printed), Printed),
    Status = iolist_to_binary(io_lib:format("~tp~n~tp", [sys:get_status(emqx_guard_notify), sys:get_status(emqx_guard_scheduler)])),
    Logs = logged(Handler),
    ok = logger:set_primary_config(level, Level),
    ?assert(contains(Logs, <<"emqx_guard_notify_failed">>), Logs),
    ?assert(contains(Logs, <<"emqx_guard_settings_changed">>), Logs),
    All = unicode:characters_to_binary([Logs, Status, lists:join("\n", Printed ++ Before)]),
    [?assertNot(contains(All, Secret), Secret) || Secret <- ?SECRETS],
    port_close(P).

%% Each channel command is checked as a whole (issue 19, defect 11): a secret, signing key,
%% mobile list, channel or password without the URL, token or user it belongs to is one Error
%% line and nothing changes; given together (or after what they need) they are taken.
every_channel_command_checked_whole(_Config) ->
    ok = emqx_guard_ct_helper:start_app(real),
    Ctl = fun(Args) -> emqx_guard_ct_helper:ctl(Args) end,
    Feishu = "https://open.feishu.cn/open-apis/bot/v2/hook/FeishuHookSecret5",
    Ding = "https://oapi.dingtalk.com/robot/send?access_token=DingTokenSecret7",
    Refused = [
        {["notify_smtp", "password=pw-1"], "Error: notify_smtp_password needs notify_smtp_user (user=...)"},
        {["notify_slack", "channel=C0GUARD"], "Error: notify_slack_channel needs notify_slack_token (token=xoxb-...)"},
        {["notify_slack", "token=" ?SLACK_TOKEN], "Error: notify_slack_token needs notify_slack_channel (channel=C...)"},
        {["notify_feishu", "secret=abc"], "Error: notify_feishu_secret needs notify_feishu_url (url=https://...)"},
        {["notify_dingtalk", "secret=" ?DING_SECRET], "Error: notify_dingtalk_secret needs notify_dingtalk_url (url=https://...)"},
        {["notify_dingtalk", "at_mobiles=13800000000"],
            "Error: notify_dingtalk_at_mobiles needs notify_dingtalk_url (url=https://...)"}
    ],
    Before = Ctl(["notify"]),
    File = emqx_guard_ct_helper:settings_file_content(),
    [?assertEqual([Want], Ctl(Args), Args) || {Args, Want} <- Refused],
    ?assertEqual(Before, Ctl(["notify"])),
    ?assertEqual(File, emqx_guard_ct_helper:settings_file_content()),
    %% whole: taken
    ?assertMatch(["notify_smtp_server = \"\"", _, _, "notify_smtp_user = \"ops\"", "notify_smtp_password = \"******\"" | _],
        Ctl(["notify_smtp", "user=ops", "password=pw-1"])),
    ?assertMatch([_, "notify_slack_token = \"******\"", "notify_slack_channel = \"C0GUARD\""],
        Ctl(["notify_slack", "token=" ?SLACK_TOKEN, "channel=C0GUARD"])),
    ?assertEqual(["notify_feishu_url = \"https://open.feishu.cn/\x{2026}\"", "notify_feishu_secret = \"******\""],
        Ctl(["notify_feishu", "url=" ++ Feishu, "secret=abc"])),
    ?assertEqual(["notify_dingtalk_url = \"https://oapi.dingtalk.com/\x{2026}\"", "notify_dingtalk_secret = \"\"",
        "notify_dingtalk_at_mobiles = []"], Ctl(["notify_dingtalk", Ding])),
    ?assertMatch([_, "notify_dingtalk_secret = \"******\"", "notify_dingtalk_at_mobiles = [\"13800000000\"]"],
        Ctl(["notify_dingtalk", "secret=" ?DING_SECRET, "at_mobiles=13800000000"])),
    %% what a secret needs cannot be taken away from it
    Whole = Ctl(["notify"]),
    ?assertEqual(["Error: notify_feishu_secret needs notify_feishu_url (url=https://...)"], Ctl(["notify_feishu", "url="])),
    ?assertEqual(["Error: notify_smtp_password needs notify_smtp_user (user=...)"], Ctl(["notify_smtp", "user="])),
    ?assertEqual(Whole, Ctl(["notify"])),
    %% off clears a channel whole
    ?assertEqual(["notify_feishu_url = \"\"", "notify_feishu_secret = \"\""], Ctl(["notify_feishu", "off"])),
    ?assertEqual(["notify_dingtalk_url = \"\"", "notify_dingtalk_secret = \"\"", "notify_dingtalk_at_mobiles = []"],
        Ctl(["notify_dingtalk", "off"])).

%%--------------------------------------------------------------------------------------------
%% Logs
%%--------------------------------------------------------------------------------------------

capture_logs() ->
    emqx_guard_test_logs:start().

logged(Id) ->
    _ = emqx_guard_notify:status(),
    emqx_guard_test_logs:text(emqx_guard_test_logs:stop(Id)).
