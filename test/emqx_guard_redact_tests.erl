%% @doc EUnit: the one redaction of secrets (emqx_guard_redact): settings maps with atom, binary
%% or charlist keys, terms holding them anywhere, secrets that travel without their key, command
%% line arguments and URLs. The secret keys are read from the schema's types, as the module does.
-module(emqx_guard_redact_tests).

-include_lib("eunit/include/eunit.hrl").

-define(R, emqx_guard_redact).

redacted_test() ->
    S = #{notify_smtp_password => <<"s3cret">>, notify_webhook_url => <<"https://bot:tok3n@hooks.example.com/x">>},
    R = emqx_guard_redact:settings(S),
    ?assertEqual(<<"******">>, maps:get(notify_smtp_password, R)),
    ?assertEqual(nomatch, binary:match(maps:get(notify_webhook_url, R), <<"tok3n">>)),
    ?assertEqual(#{notify_smtp_password => <<>>}, emqx_guard_redact:settings(#{notify_smtp_password => <<>>})).

%% The path and query of a webhook URL (Slack's path, DingTalk's access_token) never show.
webhook_url_shown_without_path_or_query_test() ->
    Shown = fun(Url) -> maps:get(notify_webhook_url, emqx_guard_redact:settings(#{notify_webhook_url => Url})) end,
    ?assertEqual(<<"https://hooks.slack.com/"/utf8, 16#2026/utf8>>,
        Shown(<<"https://hooks.slack.com/services/T000/B000/XXXXSECRET">>)),
    ?assertEqual(<<"https://oapi.dingtalk.com/"/utf8, 16#2026/utf8>>,
        Shown(<<"https://oapi.dingtalk.com/robot/send?access_token=abc123">>)),
    ?assertEqual(<<"http://[::1]:8080/"/utf8, 16#2026/utf8>>, Shown(<<"http://user:pw@[::1]:8080/x#frag">>)),
    ?assertEqual(<<>>, Shown(<<>>)).

redacted_args_test() ->
    ?assertEqual(
        ["notify_smtp", <<"password=******">>, "user=ops", <<"https://hooks.example.com/"/utf8, 16#2026/utf8>>],
        emqx_guard_redact:args(["notify_smtp", "PASSWORD=pw-1", "user=ops", "https://hooks.example.com/T/secret"])
    ),
    %% not text at all: left as it is, no crash
    ?assertEqual([[not_text]], emqx_guard_redact:args([[not_text]])).

redacted_term_test() ->
    St = {st, #{notify_smtp_password => <<"pw-9">>, backup_keep => 5}, [{update, #{notify_smtp_password => <<"pw-9">>}}]},
    ?assertEqual(nomatch, string:find(io_lib:format("~p", [emqx_guard_redact:term(St)]), "pw-9")).

%% Every secret of the chat channels is hidden: tokens, signing secrets, URL paths and queries.
chat_secrets_redacted_test() ->
    S = (emqx_guard_notify_config:defaults())#{
        notify_slack_url => <<"https://hooks.slack.com/services/T1/B2/SlackHook-1">>,
        notify_slack_token => <<"xoxb-Token-2">>,
        notify_teams_url => <<"https://prod.westeurope.logic.azure.com/workflows/Teams-3?sig=Sig-4">>,
        notify_feishu_url => <<"https://open.feishu.cn/open-apis/bot/v2/hook/Feishu-5">>,
        notify_feishu_secret => <<"FeishuSecret-6">>,
        notify_dingtalk_url => <<"https://oapi.dingtalk.com/robot/send?access_token=Ding-7">>,
        notify_dingtalk_secret => <<"SECDing-8">>,
        notify_wecom_url => <<"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=WeCom-9">>
    },
    Shown = io_lib:format("~tp~n~tp", [emqx_guard_redact:settings(S), emqx_guard_redact:term({st, [S]})]),
    [?assertEqual(nomatch, string:find(Shown, Secret), Secret) || Secret <- ["SlackHook-1", "Token-2", "Teams-3", "Sig-4",
        "Feishu-5", "FeishuSecret-6", "Ding-7", "SECDing-8", "WeCom-9"]],
    ?assertEqual(<<"******">>, maps:get(notify_slack_token, emqx_guard_redact:settings(S))),
    ?assertEqual(<<"https://qyapi.weixin.qq.com/"/utf8, 16#2026/utf8>>, maps:get(notify_wecom_url, emqx_guard_redact:settings(S))),
    ?assertEqual(
        [<<"token=******">>, <<"secret=******">>, <<"url=https://oapi.dingtalk.com/"/utf8, 16#2026/utf8>>,
            <<"https://h.example.com/"/utf8, 16#2026/utf8>>, "channel=C1"],
        emqx_guard_redact:args([<<"token=xoxb-1">>, <<"SECRET=s">>, <<"url=https://oapi.dingtalk.com/robot/send?access_token=x">>,
            <<"https://h.example.com/p/Secret?access_token=y">>, "channel=C1"])
    ).

secret_key_redacted_test() ->
    S = maps:merge(emqx_guard_settings:defaults(), #{backup_remote_secret_key => <<"top-secret">>}),
    ?assertEqual(<<"******">>, maps:get(backup_remote_secret_key, emqx_guard_redact:settings(S))),
    ?assertEqual([<<"secret_key=******">>], emqx_guard_redact:args([<<"secret_key=top-secret">>])).

%% Every key the schema types as a secret (password, secret, URL): a value unique to the key,
%% written so that its secret part is easy to find.
schema_secrets() ->
    [
        {K, T, secret_value(K, T)}
     || {K, T, _} <- emqx_guard_notify_config:specs() ++ emqx_guard_offsite_config:specs(),
        lists:member(T, [password, secret, url, any_url])
    ].

secret_value(K, T) when T =:= url; T =:= any_url ->
    <<"https://hooks.example.com/p/", (marker(K))/binary, "?key=", (marker(K))/binary>>;
secret_value(K, _) ->
    <<"pw-", (marker(K))/binary>>.

marker(K) ->
    <<"Mk", (integer_to_binary(erlang:phash2(K)))/binary, "x">>.

assert_hidden(Term, Secrets) ->
    Text = unicode:characters_to_binary(io_lib:format("~tp", [Term])),
    [?assertEqual(nomatch, binary:match(Text, marker(K)), {K, Text}) || {K, _, _} <- Secrets],
    ok.

%% Atom keys (the settings), binary keys (the dashboard's config) and charlist keys: each
%% secret hidden, each empty one left empty, the other values as they were.
every_schema_secret_hidden_under_any_key_form_test() ->
    Secrets = schema_secrets(),
    ?assert(length(Secrets) >= 10),
    Forms = [fun(K) -> K end, fun atom_to_binary/1, fun atom_to_list/1],
    lists:foreach(
        fun(Form) ->
            M = maps:from_list([{Form(K), V} || {K, _, V} <- Secrets] ++ [{Form(backup_keep), 7}]),
            R = ?R:settings(M),
            assert_hidden(R, Secrets),
            ?assertEqual(7, maps:get(Form(backup_keep), R)),
            [?assertEqual(<<"******">>, maps:get(Form(K), R)) || {K, T, _} <- Secrets, T =/= url, T =/= any_url],
            [?assertEqual(<<"https://hooks.example.com/"/utf8, 16#2026/utf8>>, maps:get(Form(K), R))
             || {K, T, _} <- Secrets, T =:= url orelse T =:= any_url],
            Empty = maps:from_list([{Form(K), <<>>} || {K, _, _} <- Secrets]),
            ?assertEqual(Empty, ?R:settings(Empty))
        end,
        Forms
    ).

%% Maps nested in maps, lists, improper lists and tuples; the secrets they hold are also hidden
%% where they appear without their key (a stack frame's arguments, a line quoting one, a
%% charlist).
secrets_hidden_anywhere_in_a_term_test() ->
    Secrets = schema_secrets(),
    Dashboard = maps:from_list([{atom_to_binary(K), V} || {K, _, V} <- Secrets]),
    [{K1, _, Bare} | _] = Secrets,
    Reason = {{function_clause, [{emqx_guard_settings, validate, [K1, Bare], []}]},
        {gen_server, call, [emqx_guard_settings_sync, {update_local, Dashboard, {1, node()}}, 30000]}},
    Deep = [#{nested => #{list => [x | {Reason}]}}, <<"refused: ", Bare/binary, " is wrong">>, binary_to_list(Bare)],
    assert_hidden(?R:term(Deep), Secrets),
    %% not text, and no secrets: as it was
    Plain = {a, [1, 2 | 3], #{<<"backup_keep">> => 5}, "text", <<255, 0>>, self()},
    ?assertEqual(Plain, ?R:term(Plain)).

%% Secrets of settings the caller knows (what a failing call was given) are hidden in a reason
%% that holds them without any key.
known_settings_hidden_test() ->
    Secrets = schema_secrets(),
    Known = maps:from_list([{atom_to_binary(K), V} || {K, _, V} <- Secrets]),
    Reason = {badmatch, [V || {_, _, V} <- Secrets]},
    assert_hidden(?R:term(Reason, [Known]), Secrets),
    %% a short secret is hidden as a whole value, not cut out of other text
    ?assertEqual({<<"******">>, <<"a pin">>}, ?R:term({<<"pin">>, <<"a pin">>}, [#{notify_smtp_password => <<"pin">>}])).

%% The NIF's configs: the mail password and the off-site secret key.
nif_configs_hidden_test() ->
    ?assertMatch(#{password := <<"******">>, secret_key := <<"******">>, bucket := <<"b">>},
        ?R:settings(#{password => <<"pw">>, secret_key => <<"sk">>, bucket => <<"b">>})).

%% format_status: a secret seen in the state is hidden in the message, log and reason as well.
status_hides_across_fields_test() ->
    St = {st, #{notify_slack_token => <<"xoxb-Status-1">>}},
    Status = #{state => St, message => {deliver, <<"xoxb-Status-1">>}, log => [{in, "xoxb-Status-1"}],
        reason => {bad, <<"token xoxb-Status-1 refused">>}, name => emqx_guard_notify},
    Shown = ?R:status(Status),
    ?assertEqual(nomatch, string:find(io_lib:format("~tp", [Shown]), "Status-1")),
    ?assertEqual(emqx_guard_notify, maps:get(name, Shown)).
