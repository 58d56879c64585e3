import socket, time, sys, struct
def pkt(h, body):
    n=len(body); out=bytes([h]); 
    while True:
        d=n%128; n//=128
        out+=bytes([d|(0x80 if n else 0)])
        if not n: break
    return out+body
def s(x): x=x.encode(); return struct.pack('>H',len(x))+x
port=int(sys.argv[1]); n=int(sys.argv[2]); gap=float(sys.argv[3])
c=socket.create_connection(('127.0.0.1',port)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.sendall(pkt(0x10, s('MQTT')+bytes([4,2,0,0])+s('cmds'))); c.recv(4)
c.sendall(pkt(0x31, s('db/alarm')+b'OFF')); time.sleep(1.5)
t=time.time()
for k in range(n):
    door=k%4; unlock=(k//4)%2==0
    c.sendall(pkt(0x30, s('db/bench/d%03d/set'%door)+(b'UNLOCK' if unlock else b'LOCK')))
    t+=gap; time.sleep(max(0,t-time.time()))
time.sleep(0.5); c.close()
