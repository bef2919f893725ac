{# 4x6 in shipping label, 203 dpi (812 x 1218 dots). Every {{ value }} is escaped for ^FH field data. #}
^XA
^CI28
^PW812
^LL1218
^LH0,0

{# Ship-from, top left #}
^FO30,28^A0N,22,22^FDFROM^FS
^FO30,54^A0N,26,24^FH^FD{{ ship_from.name }}^FS
^FO30,84^A0N,24,22^FH^FD{{ ship_from.street }}^FS
^FO30,112^A0N,24,22^FH^FD{{ ship_from.city }}, {{ ship_from.region }} {{ ship_from.postal_code }} {{ ship_from.country }}^FS

{# Carrier and service, white on a black box, top right #}
^FO552,20^GB240,116,116^FS
^FO552,34^FR^A0N,52,44^FB240,1,0,C^FH^FD{{ shipment.carrier }}^FS
^FO552,94^FR^A0N,30,28^FB240,1,0,C^FH^FD{{ shipment.service | upper }}^FS
^FO20,150^GB772,4,4^FS

{# Ship-to: an empty company, second street line or phone takes no room; later lines move up. #}
^FO30,170^A0N,24,24^FDSHIP TO^FS
^FO60,204^A0N,50,46^FH^FD{{ ship_to.name }}^FS
{% for company in [46 if ship_to.company | default('') else 0] %}
{% for street2 in [48 if ship_to.street2 | default('') else 0] %}
{% if company %}
^FO60,262^A0N,38,34^FH^FD{{ ship_to.company }}^FS
{% endif %}
^FO60,{{ 262 + company }}^A0N,42,38^FH^FD{{ ship_to.street }}^FS
{% if street2 %}
^FO60,{{ 310 + company }}^A0N,42,38^FH^FD{{ ship_to.street2 }}^FS
{% endif %}
^FO60,{{ 310 + company + street2 }}^A0N,42,38^FH^FD{{ ship_to.city }}{% if ship_to.region | default('') %}, {{ ship_to.region }}{% endif %} {{ ship_to.postal_code }}^FS
^FO60,{{ 358 + company + street2 }}^A0N,42,38^FH^FD{{ ship_to.country }}^FS
{% if ship_to.phone | default('') %}
^FO60,{{ 408 + company + street2 }}^A0N,24,22^FH^FD{{ ship_to.phone }}^FS
{% endif %}
{% endfor %}
{% endfor %}
^FO20,540^GB772,4,4^FS

{# Service, weight, box dimensions and a QR code with tracking and order reference #}
^FO30,562^A0N,24,24^FDSERVICE^FS
^FO30,592^A0N,64,56^FH^FD{{ shipment.service | upper }}^FS
^FO30,672^A0N,24,24^FDWEIGHT^FS
^FO30,700^A0N,36,32^FH^FD{{ parcel.weight_kg }} kg / {{ parcel.weight_lb }} lb^FS
{% if parcel.dimensions_mm %}
^FO30,742^A0N,24,22^FH^FD{{ parcel.dimensions_mm | join(' x ') }} mm^FS
{% endif %}
^FO620,556^BQN,2,4^FH^FDMA,{{ shipment.tracking }} {{ order.order_ref }}^FS
^FO20,770^GB772,4,4^FS

{# Tracking barcode: Code 128 with ten modules of quiet zone either side for every tracking
   number up to 40 characters. Digits alone are packed two a character in subset C (>;, an odd
   last digit in subset B after >6); anything else is subset B (>:). k counts the symbol
   characters (start, data, check); the module width is the widest (at most 4 dots) at which
   11k + 13 modules and 20 modules of quiet zone fit the 812 dots, and the symbol is centred. #}
^FO30,786^A0N,24,24^FDTRACKING^FS
{% if shipment.tracking %}
{% for digits, n in [((shipment.tracking | trim('0123456789')) == '', shipment.tracking | length)] %}
{% for k in [n // 2 + 2 + (n % 2) * 2 if digits else n + 2] %}
^FO{{ [0, (812 - ([4, [1, 812 // (11 * k + 33)] | max] | min) * (11 * k + 13)) // 2] | max }},818^BY{{ [4, [1, 812 // (11 * k + 33)] | max] | min }},3,180^BCN,180,Y,N,N^FH^FD{% if not digits %}>:{{ shipment.tracking | code128 }}{% elif n % 2 == 0 %}>;{{ shipment.tracking }}{% else %}>;{{ shipment.tracking[:-1] }}>6{{ shipment.tracking[-1:] }}{% endif %}^FS
{% endfor %}
{% endfor %}
{% endif %}
^FO20,1070^GB772,4,4^FS

{# Order reference, parcel n of m, contents and where it was packed #}
^FO30,1086^A0N,40,36^FB520,1,0,L^FH^FDORDER {{ order.order_ref }}^FS
^FO560,1086^A0N,40,36^FB232,1,0,R^FH^FDPARCEL {{ parcel.number }} OF {{ parcel.count }}^FS
{% for count in [lines | length] %}
{% for units in [lines | sum(attribute='qty')] %}
^FO30,1136^A0N,28,26^FH^FD{{ count }} line{{ '' if count == 1 else 's' }}, {{ units }} unit{{ '' if units == 1 else 's' }}^FS
{% endfor %}
{% endfor %}
^FO30,1180^A0N,22,20^FH^FDStation {{ station }}   Job {{ job_id }}   {{ printed_at }}^FS
^XZ
