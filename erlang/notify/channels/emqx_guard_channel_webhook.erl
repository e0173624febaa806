%% @doc The generic webhook channel: an HTTP(S) POST of one JSON document per notification
%% (`emqx_guard_notify_format:webhook/2'), for receivers of the operator's own. Any 2xx answer
%% is a success; the answer shown is the status line and the start of the body.
%%
%% Unlike the chat channels it accepts plain http to any host, as it always did.
-module(emqx_guard_channel_webhook).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4]).

-define(ANSWER_BYTES, 200).

%% @private
-spec kind() -> webhook.
kind() -> webhook.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_webhook_url, any_url, <<>>}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_webhook_url}].

%% @doc The webhook is called when its URL is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    emqx_guard_channel:setting(notify_webhook_url, Settings) =/= <<>>.

%% @doc `scheme://host[:port]/…'.
-spec target(map()) -> binary().
target(Settings) ->
    emqx_guard_channel:url_target(notify_webhook_url, Settings).

%% @doc One POST of the JSON document.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    Url = maps:get(notify_webhook_url, emqx_guard_notify_config:of_settings(Settings)),
    case emqx_guard_channel:post(Url, {<<"application/json">>, emqx_guard_notify_format:webhook(Event, Facts)}, [], Settings, Opts) of
        {ok, #{body := Body} = A} ->
            Text = emqx_guard_http:status_text(A, answer_body(Body)),
            case emqx_guard_http:classify(A, Text) of
                ok -> {ok, Text};
                Other -> Other
            end;
        {error, {retry, Line}} ->
            {retry, Line};
        {error, {fatal, Line}} ->
            {error, Line}
    end.

answer_body(B) ->
    string:trim(binary:part(B, 0, min(byte_size(B), ?ANSWER_BYTES))).
