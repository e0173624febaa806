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
    V = fun(K, R) -> said(?C:validate(K, R)) end,
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

%% CR, LF and other control characters in an address could add header lines to the e-mail.
control_characters_in_addresses_refused_test_() ->
    V = fun(K, R) -> said(?C:validate(K, R)) end,
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

%% Chat URLs: https; plain http only to 127.0.0.1, ::1 or a host the operator listed.
chat_url_rules_test_() ->
    V = fun(K, R) -> said(?C:validate(K, R)) end,
    D = ?C:defaults(),
    [
        ?_assertEqual({ok, <<"https://oapi.dingtalk.com/robot/send?access_token=x">>},
            V(notify_dingtalk_url, <<" https://oapi.dingtalk.com/robot/send?access_token=x ">>)),
        ?_assertMatch({error, <<"notify_teams_url must be an https:// URL", _/binary>>}, V(notify_teams_url, <<"ftp://x.example/y">>)),
        ?_assertEqual(ok, said(?C:check(D#{notify_wecom_url => <<"http://127.0.0.1:8080/cgi-bin/webhook/send?key=k">>}))),
        ?_assertEqual(ok, said(?C:check(D#{notify_wecom_url => <<"http://[::1]:8080/x">>}))),
        ?_assertEqual({error, <<"http://relay.internal/"/utf8, 16#2026/utf8,
                " is plain http: use https, or list the host in notify_http_hosts">>},
            said(?C:check(D#{notify_wecom_url => <<"http://relay.internal/cgi-bin/webhook/send?key=k">>}))),
        ?_assertEqual(ok, said(?C:check(D#{notify_wecom_url => <<"http://relay.internal/x">>, notify_http_hosts => [<<"relay.internal">>]}))),
        %% the generic webhook keeps accepting plain http anywhere, as it always did
        ?_assertEqual(ok, said(?C:check(D#{notify_webhook_url => <<"http://hooks.example.com/x">>}))),
        ?_assertMatch({error, <<"notify_slack_token needs notify_slack_channel", _/binary>>},
            said(?C:check(D#{notify_slack_token => <<"xoxb-1">>}))),
        ?_assertEqual({error, <<"notify_feishu_secret must not contain line breaks, tabs or other control characters">>},
            V(notify_feishu_secret, <<"abc\ndef">>)),
        ?_assertEqual({ok, [<<"13800000000">>, <<"+86-139">>]}, V(notify_dingtalk_at_mobiles, <<"13800000000, +86-139">>)),
        ?_assertMatch({error, <<"notify_dingtalk_at_mobiles: \"bob\" is not a mobile number">>}, V(notify_dingtalk_at_mobiles, <<"bob">>)),
        ?_assertMatch({error, <<"unknown setting notify_matrix_url">>}, V(notify_matrix_url, <<"https://x">>))
    ].

%%--------------------------------------------------------------------------------------------
%% Every channel is checked as a whole (issue 19, defect 11): a secret, signing key, mobile list
%% or channel without the URL or token it belongs to is refused with one line, by the rules
%% between keys (`check/1') and so on every change path (`emqx_guard_settings:change/1': command
%% line, dashboard, another node), and nothing changes.

-define(FEISHU_URL, <<"https://open.feishu.cn/open-apis/bot/v2/hook/Hook-1">>).
-define(DING_URL, <<"https://oapi.dingtalk.com/robot/send?access_token=Ding-2">>).

%% {channel, settings that are half a channel, the line that refuses them, the same channel whole}
channel_rules() ->
    [
        {email, #{notify_smtp_password => <<"pw-1">>},
            <<"notify_smtp_password needs notify_smtp_user (user=...)">>,
            #{notify_smtp_password => <<"pw-1">>, notify_smtp_user => <<"ops">>}},
        {slack, #{notify_slack_token => <<"xoxb-1">>},
            <<"notify_slack_token needs notify_slack_channel (channel=C...)">>,
            #{notify_slack_token => <<"xoxb-1">>, notify_slack_channel => <<"C0123">>}},
        {slack, #{notify_slack_channel => <<"C0123">>, notify_slack_url => <<"https://hooks.slack.com/services/T/B/X">>},
            <<"notify_slack_channel needs notify_slack_token (token=xoxb-...)">>,
            #{notify_slack_url => <<"https://hooks.slack.com/services/T/B/X">>}},
        {feishu, #{notify_feishu_secret => <<"abc">>},
            <<"notify_feishu_secret needs notify_feishu_url (url=https://...)">>,
            #{notify_feishu_secret => <<"abc">>, notify_feishu_url => ?FEISHU_URL}},
        {dingtalk, #{notify_dingtalk_secret => <<"SECabc">>},
            <<"notify_dingtalk_secret needs notify_dingtalk_url (url=https://...)">>,
            #{notify_dingtalk_secret => <<"SECabc">>, notify_dingtalk_url => ?DING_URL}},
        {dingtalk, #{notify_dingtalk_at_mobiles => [<<"13800000000">>]},
            <<"notify_dingtalk_at_mobiles needs notify_dingtalk_url (url=https://...)">>,
            #{notify_dingtalk_at_mobiles => [<<"13800000000">>], notify_dingtalk_url => ?DING_URL}},
        %% the channels that are only a URL: whole once it is set, over https or to an allowed host
        {webhook, #{notify_webhook_url => <<"ftp://hooks.example.com/x">>},
            <<"notify_webhook_url must start with http:// or https://, not \"ftp://hooks.example.com/"/utf8, 16#2026/utf8, "\"">>,
            #{notify_webhook_url => <<"http://hooks.example.com/x">>}},
        {teams, #{notify_teams_url => <<"http://relay.internal/workflows/x">>},
            <<"http://relay.internal/"/utf8, 16#2026/utf8, " is plain http: use https, or list the host in notify_http_hosts">>,
            #{notify_teams_url => <<"http://relay.internal/workflows/x">>, notify_http_hosts => [<<"relay.internal">>]}},
        {wecom, #{notify_wecom_url => <<"http://relay.internal/cgi-bin/webhook/send?key=k">>},
            <<"http://relay.internal/"/utf8, 16#2026/utf8, " is plain http: use https, or list the host in notify_http_hosts">>,
            #{notify_wecom_url => <<"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k">>}}
    ].

every_channel_checked_whole_test_() ->
    D = ?C:defaults(),
    [
        {atom_to_list(Kind) ++ ": " ++ binary_to_list(unicode:characters_to_binary(Line)),
            fun() ->
                Settings = maps:merge(D, Whole),
                ?assertEqual(ok, said(?C:check(Settings))),
                ?assert(emqx_guard_channel:enabled(Settings) =/= [] orelse Kind =:= email),
                case maps:keys(Half) of
                    [_] ->
                        [K] = maps:keys(Half),
                        case said(?C:validate(K, maps:get(K, Half))) of
                            {ok, _} -> ?assertEqual({error, Line}, said(?C:check(maps:merge(D, Half))));
                            {error, ValueLine} -> ?assertEqual(Line, ValueLine)
                        end;
                    _ ->
                        ?assertEqual({error, Line}, said(?C:check(maps:merge(D, Half))))
                end
            end}
     || {Kind, Half, Line, Whole} <- channel_rules()
    ].

%% Through emqx_guard_settings:change/1, the path of every change: refused with the line, the
%% settings in use and the file unchanged; the whole channel is taken; turning a channel off
%% (its keys back to their defaults) is taken too.
every_channel_change_checked_whole_test() ->
    with_data_dir(fun() ->
        lists:foreach(
            fun({Kind, Half, Line, Whole}) ->
                ok = emqx_guard_settings:save(emqx_guard_settings:defaults()),
                Before = emqx_guard_settings:get(),
                File = file:read_file(emqx_guard_settings:settings_file()),
                {error, Refused} = said(emqx_guard_settings:change(Half)),
                ?assertEqual(Line, Refused, Kind),
                ?assertEqual(Before, emqx_guard_settings:get()),
                ?assertEqual(File, file:read_file(emqx_guard_settings:settings_file())),
                {ok, _, New} = said(emqx_guard_settings:change(Whole)),
                ?assertEqual(Whole, maps:with(maps:keys(Whole), New)),
                Off = maps:with(channel_keys(Kind) -- [notify_to], ?C:defaults()),
                {ok, _, Cleared} = said(emqx_guard_settings:change(Off)),
                ?assertEqual(Off, maps:with(maps:keys(Off), Cleared))
            end,
            channel_rules()
        )
    end).

%% A whole channel loses what it needs: refused (clearing the URL while the secret is set).
clearing_what_a_secret_needs_is_refused_test() ->
    with_data_dir(fun() ->
        {ok, _, _} = said(emqx_guard_settings:change(#{notify_feishu_url => ?FEISHU_URL, notify_feishu_secret => <<"abc">>})),
        ?assertEqual({error, <<"notify_feishu_secret needs notify_feishu_url (url=https://...)">>},
            said(emqx_guard_settings:change(#{notify_feishu_url => <<>>}))),
        {ok, _, _} = said(emqx_guard_settings:change(#{notify_smtp_user => <<"ops">>, notify_smtp_password => <<"pw">>})),
        ?assertEqual({error, <<"notify_smtp_password needs notify_smtp_user (user=...)">>},
            said(emqx_guard_settings:change(#{notify_smtp_user => <<>>}))),
        ?assertMatch(#{notify_feishu_url := ?FEISHU_URL, notify_smtp_user := <<"ops">>}, emqx_guard_settings:get())
    end).

%% The dashboard (plugin stopped: only saved) takes the same rule.
dashboard_half_channel_refused_test() ->
    with_data_dir(fun() ->
        Old = emqx_guard_test_config:of_settings(emqx_guard_settings:defaults()),
        Before = file:read_file(emqx_guard_settings:settings_file()),
        ?assertEqual({error, <<"notify_dingtalk_secret needs notify_dingtalk_url (url=https://...)">>},
            emqx_guard_app:on_config_changed(Old, Old#{<<"notify_dingtalk_secret">> => <<"SECabc">>})),
        ?assertEqual(Before, file:read_file(emqx_guard_settings:settings_file()))
    end).

%% Settings an older version saved with half a channel: a change that does not touch it is
%% taken (the operator is not stuck), one that touches it must make it whole.
older_half_channel_does_not_block_other_changes_test() ->
    with_data_dir(fun() ->
        ok = emqx_guard_settings:save((emqx_guard_settings:defaults())#{notify_feishu_secret => <<"abc">>}),
        ok = emqx_guard_settings:forget(),
        ?assertMatch({ok, _, #{backup_keep := 3}}, said(emqx_guard_settings:change(#{backup_keep => 3}))),
        ?assertEqual({error, <<"notify_feishu_secret needs notify_feishu_url (url=https://...)">>},
            said(emqx_guard_settings:change(#{notify_feishu_secret => <<"def">>}))),
        ?assertMatch({ok, _, #{notify_feishu_secret := <<"abc">>, notify_feishu_url := ?FEISHU_URL}},
            said(emqx_guard_settings:change(#{notify_feishu_url => ?FEISHU_URL})))
    end).

channel_keys(Kind) ->
    [K || {K, _, _} <- (emqx_guard_channel:module(Kind)):settings()].

with_data_dir(Fun) ->
    Dir = filename:join(["/tmp", "emqx_guard_eunit_channels_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = emqx:set_data_dir(Dir),
    ok = emqx_guard_settings:forget(),
    try
        Fun()
    after
        _ = emqx_guard_settings:forget(),
        _ = file:del_dir_r(Dir),
        emqx:reset()
    end.

%% What a person reads of a refusal: the reason's line (emqx_guard_outcome:format_error/1).
said({error, Why}) -> {error, emqx_guard_outcome:format_error(Why)};
said(Other) -> Other.
