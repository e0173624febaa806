%% @doc TEST-ONLY stand-in for EMQX's `emqx_broker' as a `$SYS' publisher uses it
%% (apps/emqx/src/emqx_broker.erl): `safe_publish(Msg)' publishes and never raises (an error is
%% logged and gives `[]'); `publish(Msg)' routes the message to every subscriber whose topic
%% filter matches its topic and sends it there as EMQX's dispatch does, `{deliver, Topic, Msg}';
%% it answers `[{node(), Filter, 1}]', one entry per matching filter (EMQX's publish result).
%%
%% Topic filters match as MQTT says: levels split at `/', `+' one level, `#' (last) any number of
%% levels, itself included; a filter that starts with a wildcard never matches a topic that starts
%% with `$' (so `#' does not see `$SYS/...', `$SYS/brokers/+/guard/#' does).
%%
%% Test-control API (stand-in only): `subscribe(Filter)' (the caller) and `subscribe(Filter, Pid)',
%% `unsubscribe_all()', `subscribers()'. Subscriptions live in persistent_term: every process
%% sees them.
-module(emqx_broker).

-include_lib("kernel/include/logger.hrl").

-export([safe_publish/1, publish/1]).
-export([subscribe/1, subscribe/2, unsubscribe_all/0, subscribers/0, matches/2]).

-define(KEY, {?MODULE, subscribers}).

safe_publish(Msg) ->
    try
        publish(Msg)
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{msg => "publishing_error", exception => Class, reason => Reason, stacktrace => Stack}),
            []
    end.

publish(Msg) ->
    Topic = emqx_message:topic(Msg),
    true = is_binary(Topic),
    [begin Pid ! {deliver, Topic, Msg}, {node(), Filter, 1} end || {Filter, Pid} <- subscribers(), matches(Filter, Topic)].

%% @doc Stand-in only: Pid (the caller) receives every message whose topic Filter matches.
subscribe(Filter) -> subscribe(Filter, self()).

subscribe(Filter, Pid) ->
    persistent_term:put(?KEY, subscribers() ++ [{iolist_to_binary(Filter), Pid}]).

unsubscribe_all() ->
    _ = persistent_term:erase(?KEY),
    ok.

subscribers() ->
    persistent_term:get(?KEY, []).

%% @doc Whether the topic Filter matches Topic (see the module doc).
matches(Filter, Topic) ->
    case {binary:first(Filter), binary:first(Topic)} of
        {W, $$} when W =:= $+; W =:= $# -> false;
        _ -> match(binary:split(Filter, <<"/">>, [global]), binary:split(Topic, <<"/">>, [global]))
    end.

match([<<"#">>], _) -> true;
match([<<"+">> | F], [_ | T]) -> match(F, T);
match([L | F], [L | T]) -> match(F, T);
match([], []) -> true;
match(_, _) -> false.
