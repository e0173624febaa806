%% @doc The Microsoft Teams channel: a Workflows (Power Automate) "post to a channel when a
%% webhook request is received" URL, sent a message with one Adaptive Card: the title (red for
%% a failure, amber for a missing backup), the facts as a fact set, the restore command in
%% monospace. Workflows answers 202 Accepted with an empty body; errors come as 4xx with a JSON
%% `error' (`code', `message'). The card's JSON is kept under 24 KB (Teams refuses messages
%% over 28 KB), the error text cut first.
-module(emqx_guard_channel_teams).

-behaviour(emqx_guard_channel).

-export([kind/0, settings/0, cli_names/0, enabled/1, target/1, deliver/4, message/3]).

-define(MAX_BYTES, 24000).

%% @private
-spec kind() -> teams.
kind() -> teams.

%% @private
-spec settings() -> [emqx_guard_channel:setting()].
settings() ->
    [{notify_teams_url, url, <<>>}].

%% @private
-spec cli_names() -> [{binary(), atom()}].
cli_names() ->
    [{<<"url">>, notify_teams_url}].

%% @doc Set up when the URL is set.
-spec enabled(map()) -> boolean().
enabled(Settings) ->
    emqx_guard_channel:setting(notify_teams_url, Settings) =/= <<>>.

%% @doc `scheme://host/…'.
-spec target(map()) -> binary().
target(Settings) ->
    emqx_guard_channel:url_target(notify_teams_url, Settings).

%% @doc One POST of the card.
-spec deliver(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), map(), map()) ->
    emqx_guard_channel:result().
deliver(Event, Facts, Settings, Opts) ->
    Error = iolist_to_binary(maps:get(error, Facts, <<>>)),
    Doc = emqx_guard_channel:fit(fun(E) -> message(Event, Facts, E) end, Error, ?MAX_BYTES),
    Url = emqx_guard_channel:setting(notify_teams_url, Settings),
    emqx_guard_channel:service_answer(emqx_guard_channel:post_json(Url, Doc, Settings, Opts),
        fun answer/1, <<"Teams">>).

%% @doc The message document: one Adaptive Card attachment, with Error as the error text.
-spec message(emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(), binary()) -> map().
message(Event, Facts0, Error) ->
    Facts =
        case Error of
            <<>> -> Facts0;
            _ -> Facts0#{error => Error}
        end,
    Title = #{
        type => <<"TextBlock">>,
        text => <<"emqx_guard: ", (emqx_guard_notify_format:title(Event, Facts))/binary>>,
        weight => <<"Bolder">>,
        size => <<"Medium">>,
        wrap => true,
        color => color(Event)
    },
    FactSet = #{
        type => <<"FactSet">>,
        facts => [#{title => L, value => V} || {L, V} <- emqx_guard_notify_format:lines(Event, Facts)]
    },
    Restore =
        case emqx_guard_notify_format:restore(Event, Facts) of
            undefined ->
                [];
            Cmd ->
                [
                    #{type => <<"TextBlock">>, text => <<"To restore this backup, run on its node:">>, wrap => true},
                    #{type => <<"TextBlock">>, text => Cmd, fontType => <<"Monospace">>, wrap => true}
                ]
        end,
    Card = #{
        <<"$schema">> => <<"http://adaptivecards.io/schemas/adaptive-card.json">>,
        type => <<"AdaptiveCard">>,
        version => <<"1.4">>,
        body => [Title, FactSet | Restore]
    },
    #{
        type => <<"message">>,
        attachments => [#{contentType => <<"application/vnd.microsoft.card.adaptive">>, contentUrl => null, content => Card}]
    }.

%%--------------------------------------------------------------------------------------------


color(backup_failed) -> <<"Attention">>;
color(offsite_failed) -> <<"Attention">>;
color(dead_man) -> <<"Warning">>;
color(_) -> <<"Good">>.

%% Any 2xx is accepted; an error body is `{"error": {"code", "message"}}'.
answer(<<>>) ->
    {ok, <<>>};
answer(Body) ->
    case emqx_guard_json:decode(Body) of
        {ok, #{<<"error">> := #{<<"code">> := Code} = E}} ->
            {error, iolist_to_binary([Code, ": ", maps:get(<<"message">>, E, <<>>)])};
        _ ->
            {ok, emqx_guard_channel:snippet(Body)}
    end.
