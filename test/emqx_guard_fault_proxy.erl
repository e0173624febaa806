%% @doc Test helper: an HTTP/1.1 proxy on 127.0.0.1 in front of a real server (the suites'
%% s3s-fs) that injects the faults of a network or an S3 service in trouble, switchable while it
%% runs (`set_mode/2'):
%% <ul>
%% <li>`forward': every request goes to the server and its answer back (byte for byte);</li>
%% <li>`hang': requests are read and never answered, as a server that accepts connections and
%%     then stalls; leaving this mode closes those connections (the client sees a broken
%%     connection, as when such a server is restarted);</li>
%% <li>`{status, Code}': every request is answered at once with Code (e.g. 503 SlowDown) and an
%%     S3 error document, without reaching the server;</li>
%% <li>`swallow': the request reaches the server (an upload is stored there) but its answer is
%%     dropped, as a connection lost after the server did the work; `{swallow, Method}' does that
%%     to requests of that method only and forwards the others.</li>
%% </ul>
%% Each request is logged with the mode it met (`requests/1'): the tests count, e.g., how many
%% times an object was really PUT to the server. Requests are read whole (headers, then the body
%% by `content-length' or chunks) so each one is seen; answers are relayed as raw bytes.
-module(emqx_guard_fault_proxy).

-export([start/1, stop/1, port/1, set_mode/2, requests/1]).

-type mode() :: forward | hang | {status, 100..599} | swallow | {swallow, binary()}.
-type proxy() :: #{pid := pid(), port := inet:port_number(), table := ets:tid()}.
-export_type([mode/0, proxy/0]).

%% @doc Starts a proxy to 127.0.0.1:UpstreamPort, in mode `forward', on a free port.
-spec start(inet:port_number()) -> proxy().
start(UpstreamPort) ->
    Test = self(),
    Pid = spawn(fun() -> control(Test, UpstreamPort) end),
    receive
        {Pid, started, Port, Table} -> #{pid => Pid, port => Port, table => Table}
    after 5000 -> error(fault_proxy_did_not_start)
    end.

%% @doc Stops the proxy and closes every connection.
-spec stop(proxy()) -> ok.
stop(#{pid := Pid}) ->
    MRef = monitor(process, Pid),
    Pid ! stop,
    receive
        {'DOWN', MRef, process, Pid, _} -> ok
    after 5000 -> ok
    end.

%% @doc The port the proxy listens on.
-spec port(proxy()) -> inet:port_number().
port(#{port := Port}) -> Port.

%% @doc Switches the mode for the requests that come from now on (see the module doc).
-spec set_mode(proxy(), mode()) -> ok.
set_mode(#{pid := Pid}, Mode) ->
    Pid ! {set_mode, self(), Mode},
    receive
        {Pid, mode_set} -> ok
    after 5000 -> error(fault_proxy_not_answering)
    end.

%% @doc Every request so far, oldest first: `{Method, Path, ModeItMet}'.
-spec requests(proxy()) -> [{binary(), binary(), mode()}].
requests(#{table := T}) ->
    [{M, P, Mode} || {{request, _}, M, P, Mode} <- lists:sort(ets:match_object(T, {{request, '_'}, '_', '_', '_'}))].

%%--------------------------------------------------------------------------------------------

control(Test, UpstreamPort) ->
    process_flag(trap_exit, true),
    T = ets:new(?MODULE, [public, set]),
    true = ets:insert(T, {mode, forward}),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}, {reuseaddr, true}, {backlog, 64}]),
    {ok, Port} = inet:port(L),
    Self = self(),
    Acceptor = spawn_link(fun() -> accept(L, Self, T, UpstreamPort) end),
    ok = gen_tcp:controlling_process(L, Acceptor),
    Test ! {self(), started, Port, T},
    control_loop(T, []).

control_loop(T, Conns) ->
    receive
        {conn, Pid} ->
            link(Pid),
            control_loop(T, [Pid | Conns]);
        {set_mode, From, Mode} ->
            [{mode, Old}] = ets:lookup(T, mode),
            true = ets:insert(T, {mode, Mode}),
            case Old =:= hang andalso Mode =/= hang of
                true ->
                    %% the stalled connections break, as when the server is restarted
                    Hung = [P || {{hung, P}} <- ets:match_object(T, {{hung, '_'}})],
                    [exit(P, kill) || P <- Hung],
                    ets:match_delete(T, {{hung, '_'}});
                false ->
                    ok
            end,
            From ! {self(), mode_set},
            control_loop(T, Conns);
        {'EXIT', Pid, _} ->
            control_loop(T, lists:delete(Pid, Conns));
        stop ->
            %% the linked connections and the acceptor (with the listening socket) go too
            exit(shutdown)
    end.

accept(L, Control, T, UpstreamPort) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Pid = spawn(fun() ->
                receive
                    go -> conn(S, T, UpstreamPort, undefined, <<>>)
                end
            end),
            ok = gen_tcp:controlling_process(S, Pid),
            Control ! {conn, Pid},
            Pid ! go,
            accept(L, Control, T, UpstreamPort);
        {error, _} ->
            ok
    end.

%% One client connection: each request read whole, then handled as the mode says.
conn(S, T, UpstreamPort, Up, Buf) ->
    case read_request(S, Buf) of
        {ok, Method, Path, Raw, Rest} ->
            [{mode, Mode}] = ets:lookup(T, mode),
            true = ets:insert(T, {{request, erlang:unique_integer([monotonic])}, Method, Path, Mode}),
            case Mode of
                hang ->
                    true = ets:insert(T, {{hung, self()}}),
                    receive after infinity -> ok end;
                {status, Code} ->
                    ok = gen_tcp:send(S, status_answer(Method, Code)),
                    conn(S, T, UpstreamPort, Up, Rest);
                _ ->
                    Pass =
                        case Mode of
                            forward -> true;
                            swallow -> false;
                            {swallow, M} -> M =/= Method
                        end,
                    Up1 = upstream(S, UpstreamPort, Up),
                    {Sock, Relay} = Up1,
                    Relay ! {pass, Pass},
                    ok = gen_tcp:send(Sock, Raw),
                    conn(S, T, UpstreamPort, Up1, Rest)
            end;
        closed ->
            case Up of
                {Sock, Relay} ->
                    unlink(Relay),
                    exit(Relay, kill),
                    gen_tcp:close(Sock);
                undefined ->
                    ok
            end
    end.

%% The connection to the server (made on the first forwarded request) and the process that
%% relays its answers to the client, or drops them.
upstream(_Client, _Port, {_, _} = Up) ->
    Up;
upstream(Client, Port, undefined) ->
    {ok, Sock} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    Conn = self(),
    Relay = spawn_link(fun() -> relay(Sock, Client, Conn, true) end),
    ok = gen_tcp:controlling_process(Sock, Relay),
    Relay ! ready,
    {Sock, Relay}.

relay(Sock, Client, Conn, Pass) ->
    receive
        ready -> ok = inet:setopts(Sock, [{active, once}]), relay_loop(Sock, Client, Conn, Pass)
    end.

relay_loop(Sock, Client, Conn, Pass) ->
    receive
        {pass, P} ->
            relay_loop(Sock, Client, Conn, P);
        {tcp, Sock, Data} ->
            _ =
                case Pass of
                    true -> gen_tcp:send(Client, Data);
                    false -> ok
                end,
            ok = inet:setopts(Sock, [{active, once}]),
            relay_loop(Sock, Client, Conn, Pass);
        {tcp_closed, Sock} ->
            _ = gen_tcp:close(Client),
            exit(Conn, kill)
    end.

status_answer(Method, Code) ->
    Body =
        case Method of
            <<"HEAD">> -> <<>>;
            _ ->
                <<"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
                  "<Message>Please reduce your request rate.</Message></Error>">>
        end,
    Len =
        case Method of
            <<"HEAD">> -> 0;
            _ -> byte_size(Body)
        end,
    [<<"HTTP/1.1 ">>, integer_to_binary(Code), <<" Injected Fault\r\ncontent-type: application/xml\r\n">>,
     <<"content-length: ">>, integer_to_binary(Len), <<"\r\n\r\n">>, Body].

%% A whole request from the client: `{ok, Method, Path, RawBytes, Rest}' or `closed'.
read_request(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, AfterHead] ->
            [RequestLine | HeaderLines] = binary:split(Head, <<"\r\n">>, [global]),
            [Method, Path | _] = binary:split(RequestLine, <<" ">>, [global]),
            Headers = [header(L) || L <- HeaderLines],
            case {proplists:get_value(<<"content-length">>, Headers), proplists:get_value(<<"transfer-encoding">>, Headers)} of
                {_, <<"chunked">>} ->
                    case read_chunked(S, AfterHead, 0) of
                        {ok, Body, End} ->
                            <<This:End/binary, Rest/binary>> = Body,
                            {ok, Method, Path, <<Head/binary, "\r\n\r\n", This/binary>>, Rest};
                        closed ->
                            closed
                    end;
                {undefined, _} ->
                    {ok, Method, Path, <<Head/binary, "\r\n\r\n">>, AfterHead};
                {LenText, _} ->
                    Len = binary_to_integer(LenText),
                    case read_at_least(S, AfterHead, Len) of
                        {ok, Body} ->
                            <<This:Len/binary, Rest/binary>> = Body,
                            {ok, Method, Path, <<Head/binary, "\r\n\r\n", This/binary>>, Rest};
                        closed ->
                            closed
                    end
            end;
        [_] ->
            case gen_tcp:recv(S, 0) of
                {ok, More} -> read_request(S, <<Buf/binary, More/binary>>);
                {error, _} -> closed
            end
    end.

header(Line) ->
    case binary:split(Line, <<":">>) of
        [Name, Value] -> {string:lowercase(string:trim(Name)), string:trim(Value)};
        [Name] -> {string:lowercase(Name), <<>>}
    end.

read_at_least(_S, Buf, N) when byte_size(Buf) >= N ->
    {ok, Buf};
read_at_least(S, Buf, N) ->
    case gen_tcp:recv(S, 0) of
        {ok, More} -> read_at_least(S, <<Buf/binary, More/binary>>, N);
        {error, _} -> closed
    end.

%% A chunked body at the start of Buf (reading more as needed): the bytes read and where the
%% body ends in them.
read_chunked(S, Buf, At) ->
    case binary:match(Buf, <<"\r\n">>, [{scope, {At, byte_size(Buf) - At}}]) of
        {Pos, 2} ->
            SizeText = hd(binary:split(binary:part(Buf, At, Pos - At), <<";">>)),
            Size = binary_to_integer(string:trim(SizeText), 16),
            End = Pos + 2 + Size + 2,
            case read_at_least(S, Buf, End) of
                {ok, Buf1} when Size =:= 0 ->
                    {ok, Buf1, End};
                {ok, Buf1} ->
                    read_chunked(S, Buf1, End);
                closed ->
                    closed
            end;
        nomatch ->
            case gen_tcp:recv(S, 0) of
                {ok, More} -> read_chunked(S, <<Buf/binary, More/binary>>, At);
                {error, _} -> closed
            end
    end.
