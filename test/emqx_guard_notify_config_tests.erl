%% @doc EUnit: notification settings (emqx_guard_notify_config).
-module(emqx_guard_notify_config_tests).

-include_lib("eunit/include/eunit.hrl").

-define(C, emqx_guard_notify_config).

defaults_send_nothing_test() ->
    D = ?C:defaults(),
    ?assertNot(emqx_guard_channel_email:enabled(D)),
    ?assertNot(emqx_guard_channel_webhook:enabled(D)),
    ?assert(?C:wants(backup_failed, D)),
    ?assertNot(?C:wants(backup_ok, D)),
    ?assert(?C:wants(dead_man, D)),
    ?assert(?C:wants(test, D)),
    ?assert(?C:wants(offsite_failed, D)),
    ?assert(?C:wants(offsite_ok, D)),
    ?assertNot(?C:wants(offsite_failed, D#{notify_on_offsite_failed => false})),
    ?assertNot(?C:wants(offsite_ok, D#{notify_on_offsite_ok => false})),
    ?assert(?C:wants(backup_failed, D#{notify_on_offsite_failed => false})),
    ?assertEqual(lists:sort(?C:keys()), lists:sort(maps:keys(D))).

email_needs_server_and_recipient_test() ->
    D = ?C:defaults(),
    ?assertNot(emqx_guard_channel_email:enabled(D#{notify_smtp_server => <<"smtp.example.com">>})),
    ?assert(emqx_guard_channel_email:enabled(D#{notify_smtp_server => <<"smtp.example.com">>, notify_to => [<<"a@b.c">>]})),
    ?assert(emqx_guard_channel_webhook:enabled(#{notify_webhook_url => <<"https://hooks.example.com/x">>})).

validate_test_() ->
    V = fun ?C:validate/2,
    [
        ?_assertEqual({ok, <<"smtp.example.com">>}, V(notify_smtp_server, " smtp.example.com ")),
        ?_assertMatch({error, <<"notify_smtp_server must be", _/binary>>}, V(notify_smtp_server, <<"a b">>)),
        ?_assertEqual({ok, 465}, V(notify_smtp_port, <<"465">>)),
        ?_assertEqual({ok, 25}, V(notify_smtp_port, 25)),
        ?_assertMatch({error, _}, V(notify_smtp_port, <<"0">>)),
        ?_assertMatch({error, _}, V(notify_smtp_port, 70000)),
        ?_assertEqual({ok, <<"tls">>}, V(notify_smtp_tls, "TLS")),
        ?_assertEqual({error, <<"notify_smtp_tls must be none, starttls or tls, not \"ssl\"">>}, V(notify_smtp_tls, <<"ssl">>)),
        ?_assertEqual({ok, <<" pass word ">>}, V(notify_smtp_password, " pass word ")),
        ?_assertEqual({ok, <<"emqx_guard <guard@example.com>">>}, V(notify_from, <<"emqx_guard <guard@example.com>">>)),
        ?_assertMatch({error, _}, V(notify_from, <<"guard">>)),
        ?_assertEqual({ok, [<<"a@b.c">>, <<"d@e.f">>]}, V(notify_to, <<"a@b.c, d@e.f">>)),
        ?_assertEqual({ok, [<<"a@b.c">>, <<"d@e.f">>]}, V(notify_to, ["a@b.c", "d@e.f"])),
        ?_assertEqual({ok, []}, V(notify_to, <<"">>)),
        ?_assertEqual({error, <<"notify_to: \"nobody\" is not an e-mail address">>}, V(notify_to, [<<"a@b.c">>, <<"nobody">>])),
        ?_assertEqual({ok, <<"https://hooks.example.com/x?y=1">>}, V(notify_webhook_url, <<"https://hooks.example.com/x?y=1">>)),
        ?_assertMatch({error, <<"notify_webhook_url must start with http:// or https://", _/binary>>},
            V(notify_webhook_url, <<"ftp://example.com/">>)),
        ?_assertMatch({error, _}, V(notify_webhook_url, <<"not a url">>)),
        ?_assertEqual({ok, <<>>}, V(notify_webhook_url, <<>>)),
        ?_assertEqual({ok, true}, V(notify_on_success, <<"on">>)),
        ?_assertEqual({ok, false}, V(notify_dead_man, "off")),
        ?_assertEqual({ok, false}, V(notify_tls_verify, false)),
        ?_assertMatch({error, <<"notify_on_failure must be on or off", _/binary>>}, V(notify_on_failure, <<"maybe">>))
    ].

smtp_config_test() ->
    S = (?C:defaults())#{
        notify_smtp_server => <<"smtp.example.com">>,
        notify_smtp_user => <<"ops">>,
        notify_smtp_password => <<"pw">>,
        notify_from => <<"g@example.com">>,
        notify_to => [<<"a@b.c">>]
    },
    ?assertEqual(
        #{
            server => <<"smtp.example.com">>,
            port => 587,
            tls => starttls,
            tls_verify => true,
            from => <<"g@example.com">>,
            to => [<<"a@b.c">>],
            timeout_ms => 1000,
            username => <<"ops">>,
            password => <<"pw">>
        },
        emqx_guard_channel_email:smtp_config(S, 1000)
    ),
    %% no user: no AUTH at all (the password is not even passed on)
    ?assertNot(maps:is_key(password, emqx_guard_channel_email:smtp_config(S#{notify_smtp_user => <<>>}, 1000))).

redacted_test() ->
    S = #{notify_smtp_password => <<"s3cret">>, notify_webhook_url => <<"https://bot:tok3n@hooks.example.com/x">>},
    R = ?C:redacted(S),
    ?assertEqual(<<"******">>, maps:get(notify_smtp_password, R)),
    ?assertEqual(nomatch, binary:match(maps:get(notify_webhook_url, R), <<"tok3n">>)),
    ?assertEqual(#{notify_smtp_password => <<>>}, ?C:redacted(#{notify_smtp_password => <<>>})).

%% The path and query of a webhook URL (Slack's path, DingTalk's access_token) never show.
webhook_url_shown_without_path_or_query_test() ->
    Shown = fun(Url) -> maps:get(notify_webhook_url, ?C:redacted(#{notify_webhook_url => Url})) end,
    ?assertEqual(<<"https://hooks.slack.com/"/utf8, 16#2026/utf8>>,
        Shown(<<"https://hooks.slack.com/services/T000/B000/XXXXSECRET">>)),
    ?assertEqual(<<"https://oapi.dingtalk.com/"/utf8, 16#2026/utf8>>,
        Shown(<<"https://oapi.dingtalk.com/robot/send?access_token=abc123">>)),
    ?assertEqual(<<"http://[::1]:8080/"/utf8, 16#2026/utf8>>, Shown(<<"http://user:pw@[::1]:8080/x#frag">>)),
    ?assertEqual(<<>>, Shown(<<>>)).

redacted_args_test() ->
    ?assertEqual(
        ["notify_smtp", <<"password=******">>, "user=ops", <<"https://hooks.example.com/"/utf8, 16#2026/utf8>>],
        ?C:redacted_args(["notify_smtp", "PASSWORD=pw-1", "user=ops", "https://hooks.example.com/T/secret"])
    ),
    %% not text at all: left as it is, no crash
    ?assertEqual([[not_text]], ?C:redacted_args([[not_text]])).

redacted_term_test() ->
    St = {st, #{notify_smtp_password => <<"pw-9">>, backup_keep => 5}, [{update, #{notify_smtp_password => <<"pw-9">>}}]},
    ?assertEqual(nomatch, string:find(io_lib:format("~p", [?C:redacted_term(St)]), "pw-9")).

%% CR, LF and other control characters in an address could add header lines to the e-mail.
control_characters_in_addresses_refused_test_() ->
    V = fun ?C:validate/2,
    Line = <<"notify_from must not contain line breaks, tabs or other control characters">>,
    [
        ?_assertEqual({error, Line}, V(notify_from, <<"guard@example.com\r\nBcc: evil@example.net">>)),
        ?_assertEqual({error, Line}, V(notify_from, "guard@exa\tmple.com")),
        ?_assertMatch({error, <<"notify_to must not contain", _/binary>>}, V(notify_to, <<"a@b.c\nBcc: x@y.z">>)),
        ?_assertMatch({error, <<"notify_to must not contain", _/binary>>}, V(notify_to, [<<"a@b.c">>, <<"d@e\r.f">>, <<"x">>])),
        ?_assertMatch({error, <<"notify_to must not contain", _/binary>>}, V(notify_to, [<<"a@b.c\rX: y">>])),
        %% surrounding blanks are trimmed as before
        ?_assertEqual({ok, <<"guard@example.com">>}, V(notify_from, <<" guard@example.com\n">>))
    ].

to_config_round_trip_test() ->
    S = (?C:defaults())#{notify_to => [<<"a@b.c">>, <<"d@e.f">>], notify_on_success => true},
    Config = ?C:to_config(S),
    ?assertEqual(<<"a@b.c, d@e.f">>, maps:get(<<"notify_to">>, Config)),
    Back = maps:from_list([
        {K, element(2, {ok, _} = ?C:validate(K, maps:get(atom_to_binary(K), Config)))}
     || K <- ?C:keys()
    ]),
    ?assertEqual(S, Back).

%% Every secret of the chat channels is hidden: tokens, signing secrets, URL paths and queries.
chat_secrets_redacted_test() ->
    S = (?C:defaults())#{
        notify_slack_url => <<"https://hooks.slack.com/services/T1/B2/SlackHook-1">>,
        notify_slack_token => <<"xoxb-Token-2">>,
        notify_teams_url => <<"https://prod.westeurope.logic.azure.com/workflows/Teams-3?sig=Sig-4">>,
        notify_feishu_url => <<"https://open.feishu.cn/open-apis/bot/v2/hook/Feishu-5">>,
        notify_feishu_secret => <<"FeishuSecret-6">>,
        notify_dingtalk_url => <<"https://oapi.dingtalk.com/robot/send?access_token=Ding-7">>,
        notify_dingtalk_secret => <<"SECDing-8">>,
        notify_wecom_url => <<"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WeCom-9">>
    },
    Shown = io_lib:format("~tp~n~tp", [?C:redacted(S), ?C:redacted_term({st, [S]})]),
    [?assertEqual(nomatch, string:find(Shown, Secret), Secret) || Secret <- ["SlackHook-1", "Token-2", "Teams-3", "Sig-4",
        "Feishu-5", "FeishuSecret-6", "Ding-7", "SECDing-8", "WeCom-9"]],
    ?assertEqual(<<"******">>, maps:get(notify_slack_token, ?C:redacted(S))),
    ?assertEqual(<<"https://qyapi.weixin.qq.com/"/utf8, 16#2026/utf8>>, maps:get(notify_wecom_url, ?C:redacted(S))),
    ?assertEqual(
        [<<"token=******">>, <<"secret=******">>, <<"url=https://oapi.dingtalk.com/"/utf8, 16#2026/utf8>>,
            <<"https://h.example.com/"/utf8, 16#2026/utf8>>, "channel=C1"],
        ?C:redacted_args([<<"token=xoxb-1">>, <<"SECRET=s">>, <<"url=https://oapi.dingtalk.com/robot/send?access_token=x">>,
            <<"https://h.example.com/p/Secret?access_token=y">>, "channel=C1"])
    ).

%% Chat URLs: https; plain http only to 127.0.0.1, ::1 or a host the operator listed.
chat_url_rules_test_() ->
    V = fun ?C:validate/2,
    D = ?C:defaults(),
    [
        ?_assertEqual({ok, <<"https://oapi.dingtalk.com/robot/send?access_token=x">>},
            V(notify_dingtalk_url, <<" https://oapi.dingtalk.com/robot/send?access_token=x ">>)),
        ?_assertMatch({error, <<"notify_teams_url must be an https:// URL", _/binary>>}, V(notify_teams_url, <<"ftp://x.example/y">>)),
        ?_assertEqual(ok, ?C:check(D#{notify_wecom_url => <<"http://127.0.0.1:8080/cgi-bin/webhook/send?key=k">>})),
        ?_assertEqual(ok, ?C:check(D#{notify_wecom_url => <<"http://[::1]:8080/x">>})),
        ?_assertEqual({error, <<"http://relay.internal/"/utf8, 16#2026/utf8,
                " is plain http: use https, or list the host in notify_http_hosts">>},
            ?C:check(D#{notify_wecom_url => <<"http://relay.internal/cgi-bin/webhook/send?key=k">>})),
        ?_assertEqual(ok, ?C:check(D#{notify_wecom_url => <<"http://relay.internal/x">>, notify_http_hosts => [<<"relay.internal">>]})),
        %% the generic webhook keeps accepting plain http anywhere, as it always did
        ?_assertEqual(ok, ?C:check(D#{notify_webhook_url => <<"http://hooks.example.com/x">>})),
        ?_assertMatch({error, <<"notify_slack_token needs notify_slack_channel", _/binary>>},
            ?C:check(D#{notify_slack_token => <<"xoxb-1">>})),
        ?_assertEqual({error, <<"notify_feishu_secret must not contain line breaks, tabs or other control characters">>},
            V(notify_feishu_secret, <<"abc\ndef">>)),
        ?_assertEqual({ok, [<<"13800000000">>, <<"+86-139">>]}, V(notify_dingtalk_at_mobiles, <<"13800000000, +86-139">>)),
        ?_assertMatch({error, <<"notify_dingtalk_at_mobiles: \"bob\" is not a mobile number">>}, V(notify_dingtalk_at_mobiles, <<"bob">>)),
        ?_assertMatch({error, <<"unknown setting notify_matrix_url">>}, V(notify_matrix_url, <<"https://x">>))
    ].
