%% @doc The Slack channel, in one of two ways:
%% <ul>
%% <li>an incoming webhook (`notify_slack_url', `https://hooks.slack.com/services/...'): a POST
%%     of `{"text": ...}' in Slack's mrkdwn; Slack answers `ok', or an error word with a 4xx
%%     status (`invalid_payload', `no_service', `channel_not_found', ...);</li>
%% <li>a bot token and a channel (`notify_slack_token' `xoxb-...', `notify_slack_channel'):
%%     `chat.postMessage' with the token as a Bearer header; the answer's `ok' field says
%%     whether it was posted, `error' why not.</li>
%% </ul>
%% The text is cut to 4000 bytes (Slack's advice for one message; it truncates at 40,000
%% characters).
-module(emqx_guard_channel_slack).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4, text/2]).

-define(API_URL, <<"https://slack.com/api/chat.postMessage">>).
-define(MAX_TEXT, 4000).
%% chat.postMessage errors that are Slack's own trouble
-define(RETRY_ERRORS, [<<"internal_error">>, <<"fatal_error">>, <<"service_unavailable">>, <<"request_timeout">>,
    <<"ratelimited">>]).

%% @private
-spec kind() -> slack.
kind() -> slack.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_slack_url, url, <<>>}, {notify_slack_token, secret, <<>>}, {notify_slack_channel, channel_id, <<>>}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_slack_url}, {<<"token">>, notify_slack_token}, {<<"channel">>, notify_slack_channel}].

%% @doc Set up with a webhook URL, or with a bot token and a channel.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    case mode(Settings) of
        none -> false;
        _ -> true
    end.

%% @doc The webhook's `scheme://host/…', or the API's with the channel.
-spec target(map()) -> binary().
target(Settings) ->
    case mode(Settings) of
        {bot, _Token, Channel} -> <<"chat.postMessage to ", Channel/binary>>;
        {webhook, Url} -> emqx_guard_redact:url(Url);
        none -> <<"none">>
    end.

%% @doc One POST to Slack.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    Text = emqx_guard_notify_format:cut(text(Event, Facts), ?MAX_TEXT),
    case mode(Settings) of
        {bot, Token, Channel} ->
            Url = maps:get(slack_api_url, Opts, ?API_URL),
            Doc = #{channel => Channel, text => Text, mrkdwn => true},
            Auth = [{"authorization", "Bearer " ++ binary_to_list(Token)}],
            emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, Doc, Settings, Opts, Auth),
                fun api_answer/1, <<"Slack">>);
        {webhook, Url} ->
            emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, #{text => Text}, Settings, Opts),
                fun webhook_answer/1, <<"Slack">>)
    end.

%% @doc The message in Slack's mrkdwn: the title in bold, a line per fact, the restore command
%% as code.
-spec text(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts()) -> binary().
text(Event, Facts) ->
    Lines = [["*", esc(L), ":* ", esc(V), "\n"] || {L, V} <- emqx_guard_notify_format:lines(Event, Facts)],
    Restore =
        case emqx_guard_notify_format:restore(Event, Facts) of
            undefined -> [];
            Cmd -> ["To restore this backup, run on ", esc(node_text(Facts)), ":\n```", esc(Cmd), "```\n"]
        end,
    iolist_to_binary(["*emqx_guard: ", esc(emqx_guard_notify_format:title(Event, Facts)), "*\n", Lines, Restore]).

%%--------------------------------------------------------------------------------------------

mode(Settings) ->
    S = emqx_guard_notify_config:of_settings(Settings),
    case maps:with([notify_slack_url, notify_slack_token, notify_slack_channel], S) of
        #{notify_slack_token := T, notify_slack_channel := C} when T =/= <<>>, C =/= <<>> -> {bot, T, C};
        #{notify_slack_url := U} when U =/= <<>> -> {webhook, U};
        _ -> none
    end.

api_answer(Body) ->
    case emqx_guard_json:decode(Body) of
        {ok, #{<<"ok">> := true}} ->
            {ok, <<"ok">>};
        {ok, #{<<"ok">> := false} = M} ->
            Error = maps:get(<<"error">>, M, <<"unknown error">>),
            case lists:member(Error, ?RETRY_ERRORS) of
                true -> {retry, <<"error ", Error/binary>>};
                false -> {error, <<"error ", Error/binary>>}
            end;
        _ ->
            {error, emqx_guard_channel:snippet(Body)}
    end.

%% An incoming webhook answers in plain text: `ok', or the error word.
webhook_answer(Body) ->
    case string:trim(Body) of
        <<"ok">> -> {ok, <<"ok">>};
        Other -> {error, emqx_guard_channel:snippet(Other)}
    end.

%% Slack's control characters in text
esc(T) ->
    lists:foldl(fun({From, To}, Acc) -> binary:replace(Acc, From, To, [global]) end, T,
        [{<<"&">>, <<"&amp;">>}, {<<"<">>, <<"&lt;">>}, {<<">">>, <<"&gt;">>}]).

node_text(F) ->
    case maps:get(node, F, node()) of
        N when is_atom(N) -> atom_to_binary(N);
        N -> N
    end.
