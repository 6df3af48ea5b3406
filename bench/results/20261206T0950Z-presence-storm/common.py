import base64, hmac, hashlib, json, time
SECRET=b"secret0123456789abcdef0123456789"
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(sub):
    h=b64(json.dumps({"alg":"HS256","typ":"JWT"}).encode())
    p=b64(json.dumps({"sub":sub,"exp":int(time.time())+7200,"iat":int(time.time())}).encode())
    s=b64(hmac.new(SECRET,(h+"."+p).encode(),hashlib.sha256).digest())
    return h+"."+p+"."+s
def url(port,sub): return f"ws://127.0.0.1:{port}/ws?token={token(sub)}"
