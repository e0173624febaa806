%% @doc TEST-ONLY stand-in for EMQX's `emqx_message' (the message record and its helpers), as
%% EMQX has them (apps/emqx/src/emqx_message.erl, `#message{}' in emqx_message.hrl):
%% <ul>
%% <li>`make(From, Topic, Payload)' is QoS 0 (`make(From, 0, Topic, Payload)'): a `#message{}'
%%     with a fresh id, `flags = #{}', `headers = #{}' and the time of making in ms;
%%     `make(Topic, Payload)' has `From = undefined'.</li>
%% <li>`set_flags(New, Msg)' merges New into the message's flags; `get_flag(Flag, Msg)' is
%%     `false' when unset; `is_sys(Msg)' is the `sys' flag.</li>
%% </ul>
%% Accessors (`topic/1', `payload/1', `qos/1', `from/1', `get_flags/1', `timestamp/1') as EMQX's.
-module(emqx_message).

-export([make/2, make/3, make/4, set_flags/2, get_flag/2, get_flag/3, get_flags/1, is_sys/1]).
-export([topic/1, payload/1, qos/1, from/1, timestamp/1]).

-record(message, {id, qos = 0, from, flags = #{}, headers = #{}, topic, payload, timestamp, extra = #{}}).

make(Topic, Payload) -> make(undefined, Topic, Payload).

make(From, Topic, Payload) -> make(From, 0, Topic, Payload).

make(From, QoS, Topic, Payload) when QoS >= 0, QoS =< 2 ->
    #message{
        id = crypto:strong_rand_bytes(16),
        qos = QoS,
        from = From,
        topic = Topic,
        payload = Payload,
        timestamp = erlang:system_time(millisecond)
    }.

set_flags(New, Msg = #message{flags = Old}) when is_map(New) -> Msg#message{flags = maps:merge(Old, New)}.

get_flag(Flag, Msg) -> get_flag(Flag, Msg, false).

get_flag(Flag, #message{flags = Flags}, Default) -> maps:get(Flag, Flags, Default).

get_flags(#message{flags = Flags}) -> Flags.

is_sys(#message{flags = #{sys := true}}) -> true;
is_sys(_) -> false.

topic(#message{topic = T}) -> T.
payload(#message{payload = P}) -> P.
qos(#message{qos = Q}) -> Q.
from(#message{from = F}) -> F.
timestamp(#message{timestamp = T}) -> T.
