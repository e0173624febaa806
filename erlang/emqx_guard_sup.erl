%% @doc The plugin's top supervisor: the notifier (e-mail, webhook), the backup scheduler and the
%% cluster coordinator (emqx_guard_cluster).
-module(emqx_guard_sup).

-behaviour(supervisor).

-export([start_link/0]).
-export([init/1]).

%% @doc Starts the supervisor, registered as `emqx_guard_sup'.
-spec start_link() -> supervisor:startlink_ret().
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
init([]) ->
    SupFlags = #{strategy => one_for_one, intensity => 5, period => 30},
    Scheduler = #{
        id => emqx_guard_scheduler,
        start => {emqx_guard_scheduler, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [emqx_guard_scheduler]
    },
    %% Started first: the scheduler tells it about every finished run.
    Notify = #{
        id => emqx_guard_notify,
        start => {emqx_guard_notify, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [emqx_guard_notify]
    },
    %% Started after the scheduler: it adopts settings from other nodes through it.
    Cluster = #{
        id => emqx_guard_cluster,
        start => {emqx_guard_cluster, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [emqx_guard_cluster]
    },
    {ok, {SupFlags, [Notify, Scheduler, Cluster]}}.
