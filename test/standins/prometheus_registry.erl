%% @doc TEST-ONLY stand-in for prometheus.erl's `prometheus_registry' (in EMQX's release), as its
%% source has it (deadtrickster/prometheus.erl, 4.x; EMQX_CONTRACT.md, Prometheus):
%% <ul>
%% <li>The collectors live in the public ETS table `prometheus_registry_table', a `bag' of
%%     `{Registry, Collector}' owned by prometheus.erl's supervisor, never by the caller, so a
%%     registration outlives the registering process. Here a long-lived holder process owns it,
%%     started by the first call that needs it.</li>
%% <li>`register_collector(Registry, Collector) -> ok': inserted (the same pair twice is one entry:
%%     a bag keeps no duplicate objects); `register_collector/1' is the `default' registry.</li>
%% <li>`deregister_collector(Registry, Collector) -> ok': the pair deleted, then
%%     `Collector:deregister_cleanup(Registry)' called (outside any try: its crash reaches the
%%     caller).</li>
%% <li>`collect(Registry, Callback) -> ok': `Callback(Registry, Collector)' for each collector of
%%     Registry; `collectors(Registry)'; `collector_registeredp(Registry, Collector)';
%%     `clear(Registry)' (each collector's `deregister_cleanup/1' called).</li>
%% </ul>
%% Test-control API (stand-in only): `reset()' empties the table without calling anything.
-module(prometheus_registry).

-export([collect/2, collectors/1, register_collector/1, register_collector/2, deregister_collector/1,
         deregister_collector/2, clear/0, clear/1, collector_registeredp/1, collector_registeredp/2]).
-export([reset/0]).

-define(TABLE, prometheus_registry_table).

-spec collect(atom(), fun((atom(), module()) -> term())) -> ok.
collect(Registry, Callback) ->
    _ = [Callback(Registry, Collector) || {_, Collector} <- ets:lookup(table(), Registry)],
    ok.

-spec collectors(atom()) -> [module()].
collectors(Registry) ->
    [Collector || {_, Collector} <- ets:lookup(table(), Registry)].

-spec register_collector(module()) -> ok.
register_collector(Collector) ->
    register_collector(default, Collector).

-spec register_collector(atom(), module()) -> ok.
register_collector(Registry, Collector) ->
    true = ets:insert(table(), {Registry, Collector}),
    ok.

-spec deregister_collector(module()) -> ok.
deregister_collector(Collector) ->
    deregister_collector(default, Collector).

-spec deregister_collector(atom(), module()) -> ok.
deregister_collector(Registry, Collector) ->
    true = ets:delete_object(table(), {Registry, Collector}),
    Collector:deregister_cleanup(Registry),
    ok.

-spec clear() -> ok.
clear() ->
    clear(default).

-spec clear(atom()) -> ok.
clear(Registry) ->
    _ = [Collector:deregister_cleanup(Registry) || {_, Collector} <- ets:take(table(), Registry)],
    ok.

-spec collector_registeredp(module()) -> boolean().
collector_registeredp(Collector) ->
    collector_registeredp(default, Collector).

-spec collector_registeredp(atom(), module()) -> boolean().
collector_registeredp(Registry, Collector) ->
    ets:match(table(), {Registry, Collector}) =/= [].

%% @doc Stand-in only: forgets every registration.
-spec reset() -> ok.
reset() ->
    true = ets:delete_all_objects(table()),
    ok.

%% The table, created by a holder process of its own the first time (as prometheus_sup owns it).
table() ->
    case ets:info(?TABLE, name) of
        ?TABLE ->
            ?TABLE;
        undefined ->
            Parent = self(),
            Holder = spawn(fun() ->
                _ = (try ets:new(?TABLE, [bag, named_table, public, {read_concurrency, true}]) catch error:badarg -> ok end),
                Parent ! {self(), ready},
                receive stop -> ok end
            end),
            receive {Holder, ready} -> ?TABLE end
    end.
